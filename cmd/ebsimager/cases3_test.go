package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ebsimager/ebsimager/internal/casework"
	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
	"github.com/ebsimager/ebsimager/internal/s3store"
	"github.com/ebsimager/ebsimager/internal/store"
)

// sparseDisk is a 1 GiB raw disk with n runs of random bytes at
// scattered offsets, and the SHA-256 of its whole content, hashed here
// as it is written (independently of the tool).
func sparseDisk(t *testing.T, dir, name string, n int) (string, string) {
	t.Helper()
	p := filepath.Join(dir, name+".img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const size = 1 << 30
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		buf := make([]byte, 300<<10)
		rand.Read(buf)
		if _, err := f.WriteAt(buf, int64(i)*(size/int64(n))+int64(i)*4096); err != nil {
			t.Fatal(err)
		}
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, size)); err != nil {
		t.Fatal(err)
	}
	return p, hex.EncodeToString(h.Sum(nil))
}

// s3Versions maps every key under prefix of bucket to its number of
// versions: a key written twice has two.
func s3Versions(t *testing.T, api *s3.Client, bucket, prefix string) map[string]int {
	t.Helper()
	out := map[string]int{}
	p := s3.NewListObjectVersionsPaginator(api, &s3.ListObjectVersionsInput{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range page.Versions {
			out[*v.Key]++
		}
	}
	return out
}

// s3Case reads the case record key of the case under u.
func s3Case(t *testing.T, c *s3store.Client, u s3store.URL, key string) casework.Case {
	t.Helper()
	body, err := c.Get(context.Background(), u.Bucket, u.Key(key), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var cs casework.Case
	if err := json.Unmarshal(body, &cs); err != nil {
		t.Fatal(err)
	}
	return cs
}

// acquire i-… --out s3://bucket/case/ into a bucket with Object Lock:
// one crash-consistent set of snapshots, each volume acquired into its
// own prefix at once, which verify passes and export bit-exact; the
// preservation and case records are objects of the case prefix, locked.
// A rerun makes no snapshot, fetches nothing, and overwrites nothing: its
// record is a run object of its own.
func TestAcquireInstanceToS3(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	root, rootSum := sparseDisk(t, dir, "root", 12)
	data, dataSum := sparseDisk(t, dir, "data", 5)
	sums := map[string]string{"/dev/xvda": rootSum, "/dev/sdf": dataSum}
	srv, endpoint := emulatortest.StartInstance(t, emulator.Options{TrackBlocks: true, Latency: 2 * time.Millisecond}, caseInstance,
		emulatortest.RawVolume("/dev/xvda", root), emulatortest.RawVolume("/dev/sdf", data))
	c := newCLI(t, endpoint)
	s3c, api := s3Env(t, c)
	u, _ := s3store.ParseURL("s3://locked/ir-15/")
	until := time.Now().Add(72 * time.Hour).UTC().Format(time.DateOnly)
	args := []string{"acquire", caseInstance, "--out", u.String(), "--object-lock", "governance", "--retain-until", until, "--case-number", "IR-15", "--quiet"}
	r := c.ok(args...)

	cnt := srv.Counters()
	if n := cnt.Total("CreateSnapshots"); n != 1 {
		t.Fatalf("%d CreateSnapshots calls, want 1\n%s", n, cnt)
	}
	cs := s3Case(t, s3c, u, casework.JSONName)
	if cs.Status != casework.StatusComplete || cs.ExitCode != 0 || cs.Runs != 1 || len(cs.Volumes) != 2 || cs.AccountRate != 1000 ||
		strings.Join(cs.Targets, " ") != caseInstance || cs.Preservation != casework.PreservationJSON || cs.PreservationError != "" {
		t.Fatalf("case.json: %+v", cs)
	}
	text, err := s3c.Get(context.Background(), u.Bucket, u.Key(casework.TextName), 1<<20)
	if err != nil || r.stdout != string(text) {
		t.Fatalf("stdout is not case.txt (%v):\n%s\n%s", err, r.stdout, text)
	}
	want := s3store.Lock{Mode: s3store.Governance, RetainUntil: mustDate(t, until)}
	for _, name := range []string{casework.JSONName, casework.TextName, casework.PreservationJSON, casework.PreservationText} {
		if o, err := s3c.Head(context.Background(), u.Bucket, u.Key(name)); err != nil || o.Lock != want || !o.HasSHA256 {
			t.Fatalf("%s: %+v, %v; want lock %+v and a checksum", name, o, err, want)
		}
	}
	rec, name, err := casework.ReadBucketPreservation(context.Background(), s3c.Bucket(u, s3store.Lock{}), []string{caseInstance})
	if err != nil || rec == nil || name != casework.PreservationJSON || len(rec.Snapshots) != 2 || rec.Stopped != "" {
		t.Fatalf("preservation.json: %+v %q %v", rec, name, err)
	}
	var blocks int64
	for i, dev := range []string{"/dev/xvda", "/dev/sdf"} {
		v := cs.Volumes[i]
		ev := u.String() + v.SnapshotID + "/"
		manifest, err := s3c.Get(context.Background(), u.Bucket, u.Key(v.SnapshotID+"/"+store.ManifestName), 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		msum := sha256.Sum256(manifest)
		if v.InstanceID != caseInstance || v.Device != dev || v.SnapshotID != rec.Snapshots[i].SnapshotID || v.Directory != v.SnapshotID ||
			v.Status != casework.StatusComplete || v.ManifestSHA256 != hex.EncodeToString(msum[:]) || v.Fetched != v.Blocks || v.Blocks == 0 ||
			v.GetCalls != v.Blocks || v.AccountTurns != v.GetCalls || v.Error != "" {
			t.Fatalf("volume %s: %+v", dev, v)
		}
		if o, err := s3c.Head(context.Background(), u.Bucket, u.Key(v.SnapshotID+"/"+store.ManifestName)); err != nil || o.Lock != want {
			t.Fatalf("%s's manifest: %+v, %v", dev, o, err)
		}
		blocks += v.Blocks
		c.ok("verify", ev, "--quiet")
		img := filepath.Join(dir, strings.TrimPrefix(dev, "/dev/")+".raw")
		c.ok("export", ev, "--out", img, "--quiet")
		if got := sha256File(t, img); got != sums[dev] {
			t.Fatalf("%s: exported image sha256 %s, the disk's %s", dev, got, sums[dev])
		}
	}
	if a, b := cs.Volumes[0], cs.Volumes[1]; !a.Started.Before(b.Finished) || !b.Started.Before(a.Finished) {
		t.Fatalf("the volumes were not acquired at once: %v–%v and %v–%v", a.Started, a.Finished, b.Started, b.Finished)
	}
	if n := cnt.Total("GetSnapshotBlock"); n != blocks {
		t.Fatalf("%d Gets for %d blocks", n, blocks)
	}
	top, _, err := s3c.ListLevel(context.Background(), u.Bucket, u.Prefix, 1000)
	if err != nil {
		t.Fatal(err)
	}
	checkpoints, err := s3c.List(context.Background(), u.Bucket, u.Key("runs/"), 1000)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("an instance of 2 volumes to S3: %d blocks; the case's own objects: %d at its prefix, %d checkpoints under runs/", blocks, len(top), len(checkpoints))

	// The rerun: no snapshot, no Get, no object written twice; its
	// record is a new run object.
	before := s3Versions(t, api, u.Bucket, u.Prefix)
	srv.ResetCounters()
	r = c.ok(args...)
	if n, g := srv.Counters().Total("CreateSnapshots"), srv.Counters().Total("GetSnapshotBlock"); n != 0 || g != 0 {
		t.Fatalf("the rerun made %d CreateSnapshots and %d Get calls", n, g)
	}
	if !strings.Contains(r.stderr, "nothing is preserved again") {
		t.Fatalf("the rerun does not say it resumes:\n%s", r.stderr)
	}
	after := s3Versions(t, api, u.Bucket, u.Prefix)
	var runs []string
	for k, n := range after {
		if n != 1 {
			t.Fatalf("%s has %d versions: written again", k, n)
		}
		if before[k] == 0 {
			if strings.HasPrefix(k, u.Prefix+"runs/") {
				runs = append(runs, strings.TrimPrefix(k, u.Prefix))
			} else if !strings.Contains(k, "/runs/") {
				t.Fatalf("the rerun wrote %s", k)
			}
		}
	}
	if len(runs) != 1 || !strings.HasSuffix(runs[0], "-case.json") {
		t.Fatalf("the rerun's case records: %v", runs)
	}
	// Resumed without the lock, or with --force: refused before anything
	// is done.
	srv.ResetCounters()
	c.fails(exitUsage, "resume the case with the same --object-lock", "acquire", caseInstance, "--out", u.String(), "--quiet")
	c.fails(exitUsage, "--force cannot replace evidence in a bucket", append(args, "--force")...)
	if n := srv.Counters().Total("CreateSnapshots") + srv.Counters().Total("GetSnapshotBlock"); n != 0 {
		t.Fatalf("a refused rerun made %d calls", n)
	}
	again := s3Case(t, s3c, u, runs[0])
	if again.Runs != 2 || again.Status != casework.StatusComplete || !again.Created.Equal(cs.Created) {
		t.Fatalf("the rerun's record: %+v", again)
	}
	for i, v := range again.Volumes {
		if v.SnapshotID != cs.Volumes[i].SnapshotID || v.Kept != v.Blocks || v.Fetched != 0 || v.ManifestSHA256 != cs.Volumes[i].ManifestSHA256 {
			t.Fatalf("rerun, volume %d: %+v", i, v)
		}
	}
}

// snapshot --record s3://… writes its record as objects, once, locked,
// with a checkpoint each time its snapshots changed (not at every poll);
// a second run into the same prefix is refused before any snapshot is
// made. acquire i-… --out s3://… killed while it waits for its snapshots
// leaves a checkpoint naming them: the rerun acquires those, making
// none, and its case.json names the checkpoint and says the preservation
// was stopped.
func TestSnapshotAndKilledPreservationToS3(t *testing.T) {
	t.Parallel()
	srv, endpoint := emulatortest.StartInstance(t, emulator.Options{TrackBlocks: true, SnapshotDelay: 2 * time.Second}, caseInstance,
		emulatortest.SyntheticVolume("/dev/xvda", 1, 0.02, 7), emulatortest.SyntheticVolume("/dev/sdf", 1, 0.03, 8))
	c := newCLI(t, endpoint)
	s3c, _ := s3Env(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	targets := []string{caseInstance}

	rec, _ := s3store.ParseURL("s3://locked/rec/")
	snapshot := []string{"snapshot", caseInstance, "--record", rec.String(), "--object-lock", "compliance", "--retain-days", "1", "--quiet"}
	r := c.ok(snapshot...)
	if !strings.HasSuffix(r.stdout, "record: "+rec.String()+"preservation.json\n") {
		t.Fatalf("snapshot's output:\n%s", r.stdout)
	}
	got, name, err := casework.ReadBucketPreservation(ctx, s3c.Bucket(rec, s3store.Lock{}), targets)
	if err != nil || got == nil || name != casework.PreservationJSON || len(got.Snapshots) != 2 || got.Stopped != "" {
		t.Fatalf("snapshot's record: %+v %q %v", got, name, err)
	}
	for _, name := range []string{casework.PreservationJSON, casework.PreservationText} {
		if o, err := s3c.Head(ctx, rec.Bucket, rec.Key(name)); err != nil || o.Lock.Mode != s3store.Compliance || !o.HasSHA256 {
			t.Fatalf("%s: %+v, %v", name, o, err)
		}
	}
	checkpoints, err := s3c.List(ctx, rec.Bucket, rec.Key("runs/"), 100)
	if err != nil || len(checkpoints) == 0 || len(checkpoints) > 4 || !strings.HasSuffix(checkpoints[0].Key, "-snapshot.json") {
		t.Fatalf("snapshot's checkpoints: %+v, %v", checkpoints, err)
	}
	c.fails(exitUsage, "--legal-hold applies to --record s3://bucket/prefix/", "snapshot", caseInstance, "--record", t.TempDir(), "--legal-hold")
	srv.ResetCounters()
	c.fails(exitConflict, "already holds a preservation record", snapshot...)
	if n := srv.Counters().Total("CreateSnapshots"); n != 0 {
		t.Fatalf("a refused record made %d CreateSnapshots calls", n)
	}

	u, _ := s3store.ParseURL("s3://plain/killed/")
	b := s3c.Bucket(u, s3store.Lock{})
	args := []string{"acquire", caseInstance, "--out", u.String(), "--quiet"}
	cmd := c.command(ctx, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var made *casework.Recorded
	for {
		if made, name, _ = casework.ReadBucketPreservation(ctx, b, targets); made != nil && len(made.Snapshots) == 2 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("no checkpoint with both snapshots")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if made, name, err = casework.ReadBucketPreservation(ctx, b, targets); err != nil || made == nil {
		t.Fatalf("after the kill: %+v, %v", made, err)
	}
	if _, err := s3c.Head(ctx, u.Bucket, u.Key(casework.PreservationJSON)); err == nil {
		t.Fatal("the killed run got as far as preservation.json: the test proves nothing")
	}
	time.Sleep(2 * time.Second) // the snapshots complete
	srv.ResetCounters()
	r = c.ok(args...)
	if n := srv.Counters().Total("CreateSnapshots"); n != 0 || !strings.Contains(r.stderr, "nothing is preserved again") {
		t.Fatalf("the rerun made %d CreateSnapshots calls:\n%s", n, r.stderr)
	}
	cs := s3Case(t, s3c, u, casework.JSONName)
	if cs.Status != casework.StatusComplete || cs.Preservation != name || !strings.HasSuffix(name, "-snapshot.json") ||
		cs.Volumes[0].SnapshotID != made.Snapshots[0].SnapshotID || cs.Volumes[1].SnapshotID != made.Snapshots[1].SnapshotID ||
		!strings.Contains(cs.PreservationError, "stopped while it ran") {
		t.Fatalf("case.json: %+v (checkpoint %s)", cs, name)
	}

	// A case of snapshots (those the snapshot command made) to S3: one
	// prefix each, case.json once complete.
	two, _ := s3store.ParseURL("s3://plain/two/")
	c.ok("acquire", got.Snapshots[0].SnapshotID, got.Snapshots[1].SnapshotID, "--out", two.String(), "--quiet")
	cs = s3Case(t, s3c, two, casework.JSONName)
	if cs.Status != casework.StatusComplete || cs.Preservation != "" || len(cs.Volumes) != 2 || cs.Volumes[1].SnapshotID != got.Snapshots[1].SnapshotID || cs.Volumes[1].Fetched != cs.Volumes[1].Blocks {
		t.Fatalf("a case of snapshots: %+v", cs)
	}
	c.ok("verify", two.String()+got.Snapshots[1].SnapshotID+"/", "--quiet")
}
