// Command acquire-bench measures ebsimager's acquisition against the
// emulator, every client in its own process, and prints a Markdown table.
//
//	go build -o /tmp/ebsimager ./cmd/ebsimager
//	go run ./bench/acquire -bin /tmp/ebsimager [-only matrix,ceiling,memory] [-rows SUBSTR,...]
//
// or bench/acquire/run.sh, which builds both.
//
// The matrix: for each bucket depth in -bursts (as a time at the quota:
// 0.1s is a tenth of a second's worth) and each latency/quota in -links,
// `acquire --out`, `acquire --image x.raw` and `acquire --image x.E01`
// against an emulator whose per-snapshot GetSnapshotBlock bucket has that
// depth. Each row gives the blocks fetched per wall second as a fraction
// of the quota, the throttled responses per 1,000 GetSnapshotBlock
// requests (as the emulator counted them), the client's CPU time (user +
// system) per GiB fetched, its peak RSS and its wall time.
//
// The ceiling: no latency and no quota. A minimal reference client (the
// SDK, 32 workers, SHA-256 of each block against its checksum, WriteAt;
// this program re-executed with -refclient), then `acquire --out`,
// `--image` raw, `--image` E01 and `--out --compress zstd` with age
// encryption to a recipient file, each as a fraction of the reference
// client's blocks per second in the same run.
//
// The memory scenario (not run by default) gives the peak RSS of budget on
// a fully allocated 16 TiB snapshot and of acquire on a sparse 64 TiB one.
//
// Every row starts a fresh emulator, so each starts with a full bucket and
// its own counters. Rows run one after another (with -runs N, each N times,
// the fastest kept); the emulator shares the machine with the client, and
// the machine line gives the load average, since a busy machine lowers
// every fraction.
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"filippo.io/age"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	ebsapi "github.com/aws/aws-sdk-go-v2/service/ebs"
)

var (
	bin      = flag.String("bin", "ebsimager", "ebsimager binary to measure")
	only     = flag.String("only", "matrix,ceiling", "scenarios to run: matrix, ceiling, memory")
	rowsFlag = flag.String("rows", "", "run only the rows whose id contains one of these comma-separated strings (see -list)")
	list     = flag.Bool("list", false, "print the row ids and exit")
	bursts   = flag.String("bursts", "0.1s,1s", "per-snapshot bucket depths for the matrix, as times at the quota (emulate --get-burst; 1 is no burst)")
	links    = flag.String("links", "20ms/500,100ms/1000", "latency/quota pairs for the matrix (quota in GetSnapshotBlock per second per snapshot)")
	sizeGiB  = flag.Int("size", 8, "volume size of the synthetic snapshot, GiB")
	fraction = flag.Float64("fraction", 0.5, "fraction of the snapshot's blocks that are allocated (8 GiB at 0.5: about 8,192 blocks)")
	timeout  = flag.Duration("timeout", 5*time.Minute, "give up on a row after this long")
	runs     = flag.Int("runs", 1, "run each row this many times and keep the fastest (a failure wins)")

	refclient = flag.String("refclient", "", "internal: run the reference client against this endpoint")
	refsnap   = flag.String("refsnap", "", "internal: snapshot for -refclient")
	refout    = flag.String("refout", "", "internal: output file for -refclient")
)

const snap = "snap-0bec0000000000001"

func main() {
	flag.Parse()
	if *refclient != "" {
		if err := reference(*refclient, *refsnap, *refout); err != nil {
			log.Fatal(err)
		}
		return
	}
	rows, err := plan()
	if err != nil {
		log.Fatal(err)
	}
	if *list {
		for _, r := range rows {
			fmt.Println(r.id)
		}
		return
	}
	tmp, err := os.MkdirTemp("", "acquire-bench-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	load0 := loadavg()
	start := time.Now()
	var results []result
	var refRate float64
	for _, r := range rows {
		if r.ceiling && r.kind != kindRef && refRate == 0 {
			log.Printf("%s: no reference row ran before it; its fraction is left out", r.id)
		}
		res := runRow(tmp, r)
		for i := 1; i < *runs && res.err == nil; i++ {
			if again := runRow(tmp, r); again.err != nil || again.wall < res.wall {
				res = again
			}
		}
		if r.kind == kindRef && res.err == nil {
			refRate = res.rate()
		}
		res.refRate = refRate
		log.Printf("%s: %s", r.id, res.line())
		results = append(results, res)
	}
	if strings.Contains(*only, "memory") {
		memory(tmp)
	}
	if len(results) > 0 {
		printTable(results, load0, time.Since(start))
	}
}

// Row kinds.
const (
	kindRef    = "ref"
	kindOut    = "out"
	kindRaw    = "raw"
	kindE01    = "e01"
	kindSealed = "zstd-age"
)

var modeNames = map[string]string{
	kindRef:    "reference client",
	kindOut:    "`acquire --out`",
	kindRaw:    "`acquire --image x.raw`",
	kindE01:    "`acquire --image x.E01`",
	kindSealed: "`acquire --out --compress zstd --recipients-file`",
}

type row struct {
	id      string
	kind    string
	ceiling bool
	burst   string
	latency string
	quota   float64
}

func (r row) setting() string {
	if r.ceiling {
		return "ceiling: no latency, no quota"
	}
	return fmt.Sprintf("burst %s, %s, %g/s", r.burst, r.latency, r.quota)
}

// plan lists the rows -only, -bursts, -links and -rows ask for.
func plan() ([]row, error) {
	var all []row
	scenarios := strings.Split(*only, ",")
	for _, s := range scenarios {
		switch s {
		case "matrix":
			for _, b := range strings.Split(*bursts, ",") {
				for _, l := range strings.Split(*links, ",") {
					lat, q, ok := strings.Cut(l, "/")
					quota, err := strconv.ParseFloat(q, 64)
					if _, derr := time.ParseDuration(lat); !ok || err != nil || derr != nil || quota <= 0 {
						return nil, fmt.Errorf("-links %q: want LATENCY/QUOTA, such as 20ms/500", l)
					}
					for _, k := range []string{kindOut, kindRaw, kindE01} {
						all = append(all, row{id: fmt.Sprintf("b%s/%s/%s", b, l, k), kind: k, burst: b, latency: lat, quota: quota})
					}
				}
			}
		case "ceiling":
			for _, k := range []string{kindRef, kindOut, kindRaw, kindE01, kindSealed} {
				all = append(all, row{id: "ceiling/" + k, kind: k, ceiling: true})
			}
		case "memory":
		default:
			return nil, fmt.Errorf("-only: unknown scenario %q", s)
		}
	}
	if *rowsFlag == "" {
		return all, nil
	}
	var rows []row
	for _, r := range all {
		for _, want := range strings.Split(*rowsFlag, ",") {
			if strings.Contains(r.id, want) {
				rows = append(rows, r)
				break
			}
		}
	}
	return rows, nil
}

type result struct {
	row
	err     error
	blocks  int64 // fetched
	bytes   int64
	wall    time.Duration
	cpu     time.Duration
	maxRSS  int64 // KiB
	gets    int64 // GetSnapshotBlock requests the emulator answered
	thrott  int64 // of which throttled
	refRate float64
	note    string
}

func (r result) rate() float64 { return float64(r.blocks) / r.wall.Seconds() }

func (r result) fraction() float64 {
	if r.ceiling {
		return r.rate() / r.refRate
	}
	return r.rate() / r.quota
}

func (r result) gib() float64 { return float64(r.bytes) / (1 << 30) }

func (r result) line() string {
	if r.err != nil {
		return "FAILED: " + r.err.Error()
	}
	return fmt.Sprintf("%d blocks in %.1f s: %.0f blocks/s, fraction %.3f, %d Gets, %d throttled, %.2f CPU-s/GiB, peak RSS %.0f MiB%s",
		r.blocks, r.wall.Seconds(), r.rate(), r.fraction(), r.gets, r.thrott, r.cpu.Seconds()/r.gib(), float64(r.maxRSS)/1024, r.note)
}

// runRow starts an emulator for r, runs its client and reads the
// emulator's counters.
func runRow(tmp string, r row) (res result) {
	res.row = r
	// Start each row with no dirty pages of another's to write back.
	syscall.Sync()
	args := []string{"--synthetic", fmt.Sprintf("%s=%dGiB,%g,1", snap, *sizeGiB, *fraction)}
	if !r.ceiling {
		args = append(args, "--latency", r.latency, "--get-rate-per-snapshot", fmt.Sprint(r.quota), "--get-burst", r.burst)
	}
	em, err := startEmulator(args...)
	if err != nil {
		res.err = err
		return res
	}
	defer func() {
		counters, err := em.stop()
		if err == nil {
			res.gets, res.thrott, err = getCounts(counters)
		}
		if err != nil && res.err == nil {
			res.err = fmt.Errorf("emulator: %w", err)
		}
	}()
	dir := filepath.Join(tmp, strings.NewReplacer("/", "-").Replace(r.id))
	if err := os.Mkdir(dir, 0o700); err != nil {
		res.err = err
		return res
	}
	defer os.RemoveAll(dir)

	if r.kind == kindRef {
		self, err := os.Executable()
		if err != nil {
			res.err = err
			return res
		}
		m, err := measure(em.endpoint, self, "-refclient", em.endpoint, "-refsnap", snap, "-refout", filepath.Join(dir, "ref.raw"))
		res.wall, res.cpu, res.maxRSS, res.err = m.wall, m.cpu, m.maxRSS, err
		if err == nil {
			res.blocks, err = strconv.ParseInt(strings.TrimSpace(string(m.stdout)), 10, 64)
			res.bytes = res.blocks << 19
			res.err = err
		}
		return res
	}
	acq := []string{"acquire", snap, "--json"}
	switch r.kind {
	case kindOut:
		acq = append(acq, "--out", filepath.Join(dir, "ev"))
	case kindRaw:
		acq = append(acq, "--image", filepath.Join(dir, "x.raw"))
	case kindE01:
		acq = append(acq, "--image", filepath.Join(dir, "x.E01"))
	case kindSealed:
		recips, err := recipientFile(tmp)
		if err != nil {
			res.err = err
			return res
		}
		acq = append(acq, "--out", filepath.Join(dir, "ev"), "--compress", "zstd", "--recipients-file", recips)
	}
	m, err := measure(em.endpoint, *bin, acq...)
	res.wall, res.cpu, res.maxRSS = m.wall, m.cpu, m.maxRSS
	if err != nil {
		res.err = err
		return res
	}
	var s summary
	if err := json.Unmarshal(m.stdout, &s); err != nil {
		res.err = fmt.Errorf("reading acquire's summary %q: %w", m.stdout, err)
		return res
	}
	if s.Blocks == 0 || s.Fetched != s.Blocks {
		res.err = fmt.Errorf("acquire fetched %d of %d listed blocks", s.Fetched, s.Blocks)
		return res
	}
	res.blocks, res.bytes = s.Fetched, s.Bytes
	// What the client counted, beside what the emulator answered.
	res.note = fmt.Sprintf(" (client: %d Gets, %d throttle retries)", s.Requests.GetCalls, s.Requests.Retries["throttle"])
	return res
}

// summary is what the bench reads of `acquire --json`.
type summary struct {
	Blocks   int64 `json:"blocks"`
	Fetched  int64 `json:"fetched"`
	Bytes    int64 `json:"bytes"`
	Requests struct {
		GetCalls int64            `json:"get_calls"`
		Retries  map[string]int64 `json:"retries_by_kind"`
	} `json:"requests"`
}

// recipientFile writes a fresh age identity and its recipient into dir
// (once) and returns the recipient file: keys go in files, never on a
// command line.
func recipientFile(dir string) (string, error) {
	path := filepath.Join(dir, "bench.recipients")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "bench.key"), []byte(id.String()+"\n"), 0o600); err != nil {
		return "", err
	}
	return path, os.WriteFile(path, []byte(id.Recipient().String()+"\n"), 0o600)
}

// emulatorProc is a running `ebsimager emulate`.
type emulatorProc struct {
	cmd      *exec.Cmd
	endpoint string
	rest     chan string // what it prints after the ready line
}

func startEmulator(args ...string) (*emulatorProc, error) {
	cmd := exec.Command(*bin, append([]string{"emulate"}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(out)
	if !sc.Scan() {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, errors.New("the emulator printed no ready line")
	}
	m := regexp.MustCompile(`endpoint=(\S+?);`).FindStringSubmatch(sc.Text())
	if m == nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("emulator ready line %q", sc.Text())
	}
	e := &emulatorProc{cmd: cmd, endpoint: m[1], rest: make(chan string, 1)}
	go func() {
		var b strings.Builder
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
		}
		e.rest <- b.String()
	}()
	return e, nil
}

// stop interrupts the emulator and returns the counters it printed.
func (e *emulatorProc) stop() (string, error) {
	e.cmd.Process.Signal(os.Interrupt)
	rest := <-e.rest
	if err := e.cmd.Wait(); err != nil {
		return rest, err
	}
	return rest, nil
}

// getCounts reads the GetSnapshotBlock line of the emulator's counters:
// "GetSnapshotBlock: N (ok A, RequestThrottledException/RESOURCE_LEVEL_THROTTLE B)".
func getCounts(counters string) (gets, throttled int64, err error) {
	m := regexp.MustCompile(`(?m)^GetSnapshotBlock: (\d+)(?: \((.*)\))?$`).FindStringSubmatch(counters)
	if m == nil {
		return 0, 0, fmt.Errorf("no GetSnapshotBlock counts in %q", counters)
	}
	gets, _ = strconv.ParseInt(m[1], 10, 64)
	for _, o := range strings.Split(m[2], ", ") {
		name, n, _ := strings.Cut(o, " ")
		if strings.HasPrefix(name, "RequestThrottledException") || strings.HasPrefix(name, "ThrottlingException") {
			v, _ := strconv.ParseInt(n, 10, 64)
			throttled += v
		}
	}
	return gets, throttled, nil
}

type measured struct {
	wall   time.Duration
	cpu    time.Duration
	maxRSS int64 // KiB
	stdout []byte
}

// measure runs a client against endpoint and takes its wall time and its
// own rusage.
func measure(endpoint, name string, args ...string) (measured, error) {
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=bench", "AWS_SECRET_ACCESS_KEY=bench", "AWS_REGION=us-east-1",
		"AWS_ENDPOINT_URL="+endpoint, "AWS_EC2_METADATA_DISABLED=true")
	cmd.Stderr = os.Stderr
	start := time.Now()
	out, err := cmd.Output()
	m := measured{wall: time.Since(start), stdout: out}
	if cmd.ProcessState != nil {
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		m.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		m.maxRSS = ru.Maxrss
	}
	if ctx.Err() != nil {
		return m, fmt.Errorf("timed out after %v", *timeout)
	}
	if err != nil {
		return m, fmt.Errorf("%s %s: %w", filepath.Base(name), strings.Join(args, " "), err)
	}
	return m, nil
}

// printTable prints the results as Markdown, with how to reproduce them
// and the machine they ran on.
func printTable(results []result, load0 string, took time.Duration) {
	first := results[0]
	gib := first.gib()
	for _, r := range results {
		if r.err == nil {
			gib = r.gib()
			first = r
			break
		}
	}
	fmt.Printf("\nSnapshot: synthetic, %d GiB, %g of its blocks allocated: %d blocks (%.2f GiB) fetched by every row",
		*sizeGiB, *fraction, first.blocks, gib)
	if *runs > 1 {
		fmt.Printf("; the fastest of %d runs of each row", *runs)
	}
	fmt.Println(".")
	fmt.Println("Fraction: blocks fetched / wall seconds / quota; for the ceiling rows, of the reference client's blocks per second.")
	fmt.Println("Throttles: throttled GetSnapshotBlock responses per 1,000 GetSnapshotBlock requests, as the emulator counted them.")
	fmt.Println()
	fmt.Println("| setting | mode | blocks/s | fraction | throttles / 1,000 | CPU-s / GiB | peak RSS (MiB) | wall (s) |")
	fmt.Println("|---|---|--:|--:|--:|--:|--:|--:|")
	for _, r := range results {
		if r.err != nil {
			fmt.Printf("| %s | %s | failed: %s | | | | | |\n", r.setting(), modeNames[r.kind], strings.ReplaceAll(r.err.Error(), "|", "\\|"))
			continue
		}
		frac := "—"
		if !r.ceiling || r.refRate > 0 {
			frac = fmt.Sprintf("%.2f", r.fraction())
		}
		fmt.Printf("| %s | %s | %.0f | %s | %.1f | %.2f | %.0f | %.1f |\n", r.setting(), modeNames[r.kind], r.rate(), frac,
			1000*float64(r.thrott)/float64(max(r.gets, 1)), r.cpu.Seconds()/r.gib(), float64(r.maxRSS)/1024, r.wall.Seconds())
	}
	fmt.Println()
	command := "go run ./bench/acquire " + quoteArgs(os.Args[1:])
	if c := os.Getenv("ACQUIRE_BENCH_COMMAND"); c != "" { // set by run.sh
		command = c
	}
	fmt.Printf("Command: `%s` (%.0f s in all).\n", command, took.Seconds())
	fmt.Printf("Machine: %s; Go %s; load average %s at the start, %s at the end.\n", machine(), strings.TrimPrefix(runtime.Version(), "go"), load0, loadavg())
}

func quoteArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t'\"$`\\*?|&;<>()") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}

// machine names the CPU, its count and the kernel.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if m := regexp.MustCompile(`(?m)^model name\s*:\s*(.+)$`).FindSubmatch(b); m != nil {
			model = strings.TrimSpace(string(m[1]))
		}
	}
	kernel := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = ", Linux " + strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%d × %s (nproc %d)%s, %s/%s", runtime.NumCPU(), model, runtime.NumCPU(), kernel, runtime.GOOS, runtime.GOARCH)
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

func memory(tmp string) {
	em, err := startEmulator("--synthetic", snap+"=16TiB,1,1", "--synthetic", "snap-0bec0000000000002=64TiB,0.00006103515625,1")
	if err != nil {
		log.Fatal(err)
	}
	defer em.stop()
	r, err := measure(em.endpoint, *bin, "budget", snap, "--json")
	if err != nil {
		log.Fatal(err)
	}
	var e struct {
		Blocks       int64 `json:"blocks"`
		ListRequests int64 `json:"list_requests"`
	}
	json.Unmarshal(r.stdout, &e)
	fmt.Printf("memory: budget of a fully allocated 16 TiB snapshot (%d blocks, %d List calls): peak RSS %.1f MiB, %.1f s\n",
		e.Blocks, e.ListRequests, float64(r.maxRSS)/1024, r.wall.Seconds())
	r, err = measure(em.endpoint, *bin, "acquire", "snap-0bec0000000000002", "--out", filepath.Join(tmp, "mem"), "--json")
	if err != nil {
		log.Fatal(err)
	}
	var s summary
	json.Unmarshal(r.stdout, &s)
	fmt.Printf("memory: acquire of a 64 TiB snapshot with %d blocks (%.1f GiB) allocated: peak RSS %.1f MiB, %.1f s\n",
		s.Blocks, float64(s.Bytes)/(1<<30), float64(r.maxRSS)/1024, r.wall.Seconds())
	os.RemoveAll(filepath.Join(tmp, "mem"))
}

// reference is the minimal client the ceiling is measured against: the
// SDK, SHA-256 of each block against its checksum, WriteAt, 32 workers.
// It prints the number of blocks it fetched.
func reference(endpoint, id, out string) error {
	tr := &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64, DisableCompression: true}
	c := ebsapi.New(ebsapi.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("bench", "bench", ""), Retryer: aws.NopRetryer{},
		HTTPClient: &http.Client{Transport: tr}})
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	ctx := context.Background()
	type ref struct {
		i   int32
		tok string
	}
	refs := make(chan ref, 64)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		first  error
		blocks int64
	)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 512<<10)
			for r := range refs {
				o, err := c.GetSnapshotBlock(ctx, &ebsapi.GetSnapshotBlockInput{SnapshotId: aws.String(id), BlockIndex: aws.Int32(r.i), BlockToken: aws.String(r.tok)})
				if err == nil {
					var n int
					n, err = io.ReadFull(o.BlockData, buf)
					o.BlockData.Close()
					sum := sha256.Sum256(buf[:n])
					if err == nil && base64.StdEncoding.EncodeToString(sum[:]) != aws.ToString(o.Checksum) {
						err = fmt.Errorf("block %d: checksum", r.i)
					}
					if err == nil {
						_, err = f.WriteAt(buf[:n], int64(r.i)*int64(len(buf)))
					}
				}
				if err != nil {
					mu.Lock()
					first = err
					mu.Unlock()
				}
			}
		}()
	}
	var token *string
	for {
		o, err := c.ListSnapshotBlocks(ctx, &ebsapi.ListSnapshotBlocksInput{SnapshotId: aws.String(id), MaxResults: aws.Int32(10000), NextToken: token})
		if err != nil {
			return err
		}
		for _, b := range o.Blocks {
			refs <- ref{*b.BlockIndex, *b.BlockToken}
			blocks++
		}
		if o.NextToken == nil {
			break
		}
		token = o.NextToken
	}
	close(refs)
	wg.Wait()
	fmt.Println(blocks)
	return first
}
