// Command acquire-bench measures ebsimager's acquisition against the
// emulator, each in its own process: throughput as a fraction of an
// injected quota, the ceiling against a minimal reference client, and
// peak memory of budget and acquire on very large synthetic snapshots.
//
//	go build -o /tmp/ebsimager ./cmd/ebsimager
//	go run ./bench/acquire -bin /tmp/ebsimager [-only latency,ceiling,memory]
//
// It runs the reference client by re-executing itself with -refclient.
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	ebsapi "github.com/aws/aws-sdk-go-v2/service/ebs"
)

var (
	bin       = flag.String("bin", "ebsimager", "ebsimager binary to measure")
	only      = flag.String("only", "latency,ceiling,memory", "scenarios to run")
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
	tmp, err := os.MkdirTemp("", "acquire-bench-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	for _, s := range strings.Split(*only, ",") {
		switch s {
		case "latency":
			latency(tmp)
		case "ceiling":
			ceiling(tmp)
		case "memory":
			memory(tmp)
		default:
			log.Fatalf("unknown scenario %q", s)
		}
	}
}

// emulator starts `ebsimager emulate` with args and returns its endpoint
// and a stop function.
func emulator(args ...string) (string, func()) {
	cmd := exec.Command(*bin, append([]string{"emulate"}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		log.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	if !sc.Scan() {
		log.Fatal("emulator printed no ready line")
	}
	line := sc.Text()
	i := strings.Index(line, "endpoint=")
	if i < 0 {
		log.Fatalf("ready line %q", line)
	}
	endpoint := strings.Fields(strings.TrimSuffix(line[i+len("endpoint="):], ";"))[0]
	endpoint = strings.TrimSuffix(endpoint, ";")
	go io.Copy(io.Discard, out)
	return endpoint, func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }
}

type run struct {
	wall   time.Duration
	cpu    time.Duration
	maxRSS int64 // KiB
	stdout []byte
}

func measure(endpoint string, name string, args ...string) run {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=bench", "AWS_SECRET_ACCESS_KEY=bench", "AWS_REGION=us-east-1",
		"AWS_ENDPOINT_URL="+endpoint, "AWS_EC2_METADATA_DISABLED=true")
	cmd.Stderr = os.Stderr
	start := time.Now()
	out, err := cmd.Output()
	wall := time.Since(start)
	if err != nil {
		log.Fatalf("%s %v: %v", name, args, err)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return run{wall: wall, cpu: cpu, maxRSS: ru.Maxrss, stdout: out}
}

type summary struct {
	Blocks          int64   `json:"blocks"`
	Fetched         int64   `json:"fetched"`
	Bytes           int64   `json:"bytes"`
	Seconds         float64 `json:"seconds"`
	BlocksPerSecond float64 `json:"blocks_per_second"`
	Requests        struct {
		Retries map[string]int64 `json:"retries_by_kind"`
	} `json:"requests"`
}

func parse(r run) summary {
	var s summary
	if err := json.Unmarshal(r.stdout, &s); err != nil {
		log.Fatalf("parsing %q: %v", r.stdout, err)
	}
	return s
}

func latency(tmp string) {
	const quota = 500
	endpoint, stop := emulator("--synthetic", snap+"=8GiB,0.5,1", "--latency", "20ms", "--get-rate-per-snapshot", fmt.Sprint(quota))
	defer stop()
	r := measure(endpoint, *bin, "acquire", snap, "--out", filepath.Join(tmp, "latency"), "--json")
	s := parse(r)
	fmt.Printf("latency-bound: 20 ms per Get, quota %d blocks/s, 8 GiB 50%% allocated (%d blocks)\n", quota, s.Blocks)
	fmt.Printf("  %.1f blocks/s = %.3f of the quota over %.1f s; retries %v\n", s.BlocksPerSecond, s.BlocksPerSecond/quota, s.Seconds, s.Requests.Retries)
	os.RemoveAll(filepath.Join(tmp, "latency"))
}

func ceiling(tmp string) {
	endpoint, stop := emulator("--synthetic", snap+"=8GiB,0.5,1")
	defer stop()
	self, _ := os.Executable()
	ref := measure(endpoint, self, "-refclient", endpoint, "-refsnap", snap, "-refout", filepath.Join(tmp, "ref.raw"))
	var blocks int64
	fmt.Sscan(string(ref.stdout), &blocks)
	os.Remove(filepath.Join(tmp, "ref.raw"))
	gib := float64(blocks) * 512 / (1 << 20)
	refRate := float64(blocks) / ref.wall.Seconds()
	fmt.Printf("ceiling: no latency, no quota, 8 GiB 50%% allocated (%d blocks, %.1f GiB)\n", blocks, gib)
	fmt.Printf("  reference (SDK + SHA-256 + WriteAt, 32 workers): %.0f blocks/s, %.2f CPU-s/GiB (client only)\n", refRate, ref.cpu.Seconds()/gib)
	for _, mode := range []struct{ name, flag, path string }{
		{"acquire --out (one fsynced file per block)", "--out", filepath.Join(tmp, "ev")},
		{"acquire --image (sparse raw, 3 hashes at close)", "--image", filepath.Join(tmp, "direct.raw")},
		{"acquire --image --hash none (like the reference: SDK, SHA-256, WriteAt)", "--image", filepath.Join(tmp, "nohash.raw")},
	} {
		args := []string{"acquire", snap, mode.flag, mode.path, "--json"}
		if strings.Contains(mode.name, "--hash none") {
			args = append(args, "--hash", "none")
		}
		r := measure(endpoint, *bin, args...)
		s := parse(r)
		rate := float64(s.Fetched) / r.wall.Seconds()
		fmt.Printf("  %s: %.0f blocks/s (%.2f of reference), %.2f CPU-s/GiB, wall %.1f s\n", mode.name, rate, rate/refRate, r.cpu.Seconds()/gib, r.wall.Seconds())
		os.RemoveAll(mode.path)
		for _, ext := range []string{".md5", ".sha1", ".sha256"} {
			os.Remove(mode.path + ext)
		}
	}
}

func memory(tmp string) {
	endpoint, stop := emulator("--synthetic", snap+"=16TiB,1,1", "--synthetic", "snap-0bec0000000000002=64TiB,0.00006103515625,1")
	defer stop()
	r := measure(endpoint, *bin, "budget", snap, "--json")
	var e struct{ Blocks, ListRequests int64 }
	json.Unmarshal(r.stdout, &struct {
		Blocks       *int64 `json:"blocks"`
		ListRequests *int64 `json:"list_requests"`
	}{&e.Blocks, &e.ListRequests})
	fmt.Printf("memory: budget of a fully allocated 16 TiB snapshot (%d blocks, %d List calls): peak RSS %.1f MiB, %.1f s\n",
		e.Blocks, e.ListRequests, float64(r.maxRSS)/1024, r.wall.Seconds())
	r = measure(endpoint, *bin, "acquire", "snap-0bec0000000000002", "--out", filepath.Join(tmp, "mem"), "--json")
	s := parse(r)
	fmt.Printf("memory: acquire of a 64 TiB snapshot with %d blocks (%.1f GiB) allocated: peak RSS %.1f MiB, %.1f s\n",
		s.Blocks, float64(s.Bytes)/(1<<30), float64(r.maxRSS)/1024, r.wall.Seconds())
	os.RemoveAll(filepath.Join(tmp, "mem"))
}

// reference is the minimal client the ceiling is measured against: the
// SDK, SHA-256 of each block against its checksum, WriteAt, 32 workers.
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
