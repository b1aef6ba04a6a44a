package cost

import (
	"encoding/json"
	"testing"

	"github.com/ebsimager/ebsimager/internal/block"
)

func ptr(f float64) *float64 { return &f }

func TestCompute(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   Inputs
		want Estimate
	}{
		{
			// EBS-API.md: a fully allocated 16 TiB volume has 33,554,432
			// blocks; listing it at 10,000 per page takes 3,356 calls, at
			// least 67 s at 50/s.
			name: "16 TiB fully allocated",
			in:   Inputs{SnapshotID: "snap-0123456789abcdef0", Region: "us-east-1", VolumeSizeGiB: 16384, Blocks: block.Slots(16384)},
			want: Estimate{
				SnapshotID: "snap-0123456789abcdef0", Region: "us-east-1",
				VolumeSizeGiB: 16384, VolumeSizeBytes: 17592186044416, BlockSize: 524288,
				VolumeBlocks: 33554432, Blocks: 33554432, DownloadBytes: 17592186044416,
				PageSize: 10000, ListRequests: 3356, GetRequests: 33554432,
				PriceListPer1000: 0.0006, PriceGetPer1000: 0.003, PriceSource: table["us-east-1"].Source,
				ListCostUSD: 0.0020136, GetCostUSD: 100.663296, EstimatedCostUSD: 100.6653096,
				QuotaBlocksPerSecond: 1000, QuotaListPerSecond: 50,
				ListSeconds: 67.12, GetSeconds: 33554.432, EstimatedSeconds: 67.12 + 33554.432,
			},
		},
		{
			name: "empty snapshot still lists once",
			in:   Inputs{Region: "us-east-1", VolumeSizeGiB: 8},
			want: Estimate{
				Region: "us-east-1", VolumeSizeGiB: 8, VolumeSizeBytes: 8 << 30, BlockSize: 524288,
				VolumeBlocks: 16384, PageSize: 10000, ListRequests: 1,
				PriceListPer1000: 0.0006, PriceGetPer1000: 0.003, PriceSource: table["us-east-1"].Source,
				ListCostUSD: 0.0000006, EstimatedCostUSD: 0.0000006,
				QuotaBlocksPerSecond: 1000, QuotaListPerSecond: 50,
				ListSeconds: 0.02, EstimatedSeconds: 0.02,
			},
		},
		{
			// 10,000 blocks fill exactly one page; 10,001 need a second.
			name: "unknown Region falls back to us-east-1",
			in:   Inputs{Region: "eu-west-1", VolumeSizeGiB: 100, Blocks: 10001},
			want: Estimate{
				Region: "eu-west-1", VolumeSizeGiB: 100, VolumeSizeBytes: 100 << 30, BlockSize: 524288,
				VolumeBlocks: 204800, Blocks: 10001, DownloadBytes: 10001 * 524288,
				PageSize: 10000, ListRequests: 2, GetRequests: 10001,
				PriceListPer1000: 0.0006, PriceGetPer1000: 0.003, PriceSource: table["us-east-1"].Source,
				PriceAssumed: true,
				ListCostUSD:  0.0000012, GetCostUSD: 0.030003, EstimatedCostUSD: 0.0300042,
				QuotaBlocksPerSecond: 1000, QuotaListPerSecond: 50,
				ListSeconds: 0.04, GetSeconds: 10.001, EstimatedSeconds: 0.04 + 10.001,
			},
		},
		{
			name: "overrides: prices, page size, quotas",
			in: Inputs{
				Region: "ap-southeast-2", VolumeSizeGiB: 1, Blocks: 2048, PageSize: 100,
				ListPricePer1000: ptr(0.00066), GetPricePer1000: ptr(0.0033),
				GetPerSecond: 256, ListPerSecond: 10,
			},
			want: Estimate{
				Region: "ap-southeast-2", VolumeSizeGiB: 1, VolumeSizeBytes: 1 << 30, BlockSize: 524288,
				VolumeBlocks: 2048, Blocks: 2048, DownloadBytes: 1 << 30,
				PageSize: 100, ListRequests: 21, GetRequests: 2048,
				PriceListPer1000: 0.00066, PriceGetPer1000: 0.0033, PriceSource: "override",
				ListCostUSD: 0.00001386, GetCostUSD: 0.0067584, EstimatedCostUSD: 0.00677226,
				QuotaBlocksPerSecond: 256, QuotaListPerSecond: 10,
				ListSeconds: 2.1, GetSeconds: 8, EstimatedSeconds: 10.1,
			},
		},
		{
			name: "no Region given",
			in:   Inputs{VolumeSizeGiB: 1, Blocks: 1, GetPricePer1000: ptr(0)},
			want: Estimate{
				Region: "us-east-1", VolumeSizeGiB: 1, VolumeSizeBytes: 1 << 30, BlockSize: 524288,
				VolumeBlocks: 2048, Blocks: 1, DownloadBytes: 524288,
				PageSize: 10000, ListRequests: 1, GetRequests: 1,
				PriceListPer1000: 0.0006, PriceGetPer1000: 0, PriceSource: "override",
				ListCostUSD: 0.0000006, EstimatedCostUSD: 0.0000006,
				QuotaBlocksPerSecond: 1000, QuotaListPerSecond: 50,
				ListSeconds: 0.02, GetSeconds: 0.001, EstimatedSeconds: 0.021,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Compute(tc.in); got != tc.want {
				t.Fatalf("Compute(%+v) =\n%+v\nwant\n%+v", tc.in, got, tc.want)
			}
		})
	}
}

// TestJSON pins the field names and the printed figures that reports and
// the estimate command's --json output carry.
func TestJSON(t *testing.T) {
	e := Compute(Inputs{SnapshotID: "snap-0123456789abcdef0", Region: "us-east-1", VolumeSizeGiB: 16384, Blocks: block.Slots(16384)})
	got, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"snapshot_id":"snap-0123456789abcdef0","region":"us-east-1","volume_size_gib":16384,` +
		`"volume_size_bytes":17592186044416,"block_size":524288,"volume_blocks":33554432,"blocks":33554432,` +
		`"download_bytes":17592186044416,"list_page_size":10000,"list_requests":3356,"get_requests":33554432,` +
		`"price_list_per_1000":0.0006,"price_get_per_1000":0.003,` +
		`"price_source":"docs.aws.amazon.com/ebs/latest/userguide/ebsapi-pricing.html (us-east-1 list prices)",` +
		`"price_assumed":false,"list_cost_usd":0.0020136,"get_cost_usd":100.663296,"estimated_cost_usd":100.6653096,` +
		`"quota_blocks_per_second":1000,"quota_list_per_second":50,"list_seconds":67.12,"get_seconds":33554.432,` +
		`"estimated_seconds":33621.552}`
	if string(got) != want {
		t.Fatalf("JSON =\n%s\nwant\n%s", got, want)
	}
}

func TestPricesFor(t *testing.T) {
	p, ok := PricesFor("us-east-1")
	if !ok || p.ListPer1000 != 0.0006 || p.GetPer1000 != 0.003 || p.Source == "" {
		t.Fatalf("PricesFor(us-east-1) = %+v, %v", p, ok)
	}
	if q, ok := PricesFor("xx-nowhere-9"); ok || q != p {
		t.Fatalf("PricesFor(unknown) = %+v, %v; want us-east-1 prices and false", q, ok)
	}
	for _, r := range Regions() {
		if p, _ := PricesFor(r); p.Source == "" || p.ListPer1000 <= 0 || p.GetPer1000 <= 0 {
			t.Errorf("Region %s has an incomplete price entry %+v", r, p)
		}
	}
}

// The List calls a listing made replace the page estimate: a sparse
// volume's listing takes many short pages.
func TestComputeListRequestsMade(t *testing.T) {
	in := Inputs{Region: "us-east-1", VolumeSizeGiB: 65536, Blocks: 1383}
	if e := Compute(in); e.ListRequests != 1 {
		t.Fatalf("estimate: %d List calls, want 1", e.ListRequests)
	}
	in.ListRequests = 128
	e := Compute(in)
	if e.ListRequests != 128 || e.ListCostUSD != 128*600e-9 || e.ListSeconds != 128.0/DefaultListPerSecond {
		t.Fatalf("with 128 calls made: %+v", e)
	}
}
