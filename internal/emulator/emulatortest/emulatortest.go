package emulatortest

import (
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ebs"

	"github.com/ebsimager/ebsimager/internal/emulator"
)

// Start serves a new emulator on a free loopback port until the test ends
// and returns it with its endpoint URL.
func Start(t testing.TB, o emulator.Options) (*emulator.Server, string) {
	t.Helper()
	s := emulator.New(o)
	endpoint, err := s.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatalf("starting emulator: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, endpoint
}

// maxConns is the idle connection pool per host: more than any test or
// benchmark runs workers, so connections are reused, not churned.
const maxConns = 256

// Client returns an EBS client for endpoint with static fake credentials,
// region us-east-1 and no retries.
func Client(t testing.TB, endpoint string) *ebs.Client {
	t.Helper()
	tr := &http.Transport{
		MaxIdleConns:        maxConns,
		MaxIdleConnsPerHost: maxConns,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true, // block bodies are served as they are
	}
	t.Cleanup(tr.CloseIdleConnections)
	return ebs.New(ebs.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("emulator", "emulator", ""),
		BaseEndpoint: aws.String(endpoint),
		Retryer:      aws.NopRetryer{},
		HTTPClient:   &http.Client{Transport: tr},
	})
}

// StartInstance serves a new emulator holding one running instance with
// these volumes, the first its root device, until the test ends.
func StartInstance(t testing.TB, o emulator.Options, id string, vols ...emulator.VolumeSpec) (*emulator.Server, string) {
	t.Helper()
	s, endpoint := Start(t, o)
	if err := s.AddInstance(id, vols); err != nil {
		t.Fatalf("adding instance %s: %v", id, err)
	}
	return s, endpoint
}

// RawVolume is a volume at device whose content is the raw image at path,
// read again whenever a snapshot of it is made.
func RawVolume(device, path string) emulator.VolumeSpec {
	return emulator.VolumeSpec{Device: device, RawPath: path}
}

// SyntheticVolume is a volume at device of generated content: gib GiB, a
// fraction of its blocks written, from seed.
func SyntheticVolume(device string, gib int64, fraction float64, seed int64) emulator.VolumeSpec {
	return emulator.VolumeSpec{Device: device, Synthetic: &emulator.SyntheticSpec{VolumeGiB: gib, Fraction: fraction, Seed: seed}}
}
