package emulator_test

import (
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
)

// BenchmarkCreateSnapshotRaw measures CreateSnapshot of a raw volume: a
// sparse 1 GiB image holding 128 written blocks (64 MiB), which the
// emulator copies at creation. Bytes are the written data copied.
func BenchmarkCreateSnapshotRaw(b *testing.B) {
	path := filepath.Join(b.TempDir(), "disk.raw")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	for i := range int64(128) {
		if _, err := f.WriteAt(pattern(byte(i)), i*16*block.Size); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Truncate(1 << 30); err != nil {
		b.Fatal(err)
	}
	f.Close()
	const inst = "i-0123456789abcdef0"
	_, ep := emulatortest.StartInstance(b, emulator.Options{TempDir: b.TempDir()}, inst, emulatortest.RawVolume("/dev/xvda", path))
	form := url.Values{"Action": {"CreateSnapshot"}, "Version": {"2016-11-15"}, "VolumeId": {emulator.VolumeID(inst, "/dev/xvda")}}.Encode()
	b.SetBytes(128 * block.Size)
	b.ResetTimer()
	for range b.N {
		req, _ := http.NewRequest(http.MethodPost, ep+"/", strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=x/20240601/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=00")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}
