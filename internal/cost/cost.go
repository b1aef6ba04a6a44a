package cost

import (
	"math"
	"sort"

	"github.com/ebsimager/ebsimager/internal/block"
)

// Prices are the EBS direct API list prices of one Region, in US dollars.
type Prices struct {
	// ListPer1000 is charged per 1,000 ListSnapshotBlocks or
	// ListChangedBlocks requests.
	ListPer1000 float64
	// GetPer1000 is charged per 1,000 blocks GetSnapshotBlock returns.
	GetPer1000 float64
	// Source says where the figures come from.
	Source string
}

// DefaultRegion is the Region whose prices stand in for a Region the
// table does not know.
const DefaultRegion = "us-east-1"

// table holds the Regions whose EBS direct API prices are published where
// we could read them. AWS's pricing guide (docs.aws.amazon.com/ebs/latest/
// userguide/ebsapi-pricing.html) gives only the us-east-1 figures as its
// worked example and sends readers to aws.amazon.com/ebs/pricing for the
// rest; no other Region's figure was found in a form we could cite, so
// other Regions fall back to us-east-1 and say so (Estimate.PriceAssumed).
// Add a Region here only with its source.
var table = map[string]Prices{
	// EBS user guide, "Pricing for EBS direct APIs": ListChangedBlocks and
	// ListSnapshotBlocks $0.0006 per 1,000 requests, GetSnapshotBlock
	// $0.003 per 1,000 blocks returned; the same figures as the project's
	// EBS-API.md notes give for us-east-1.
	"us-east-1": {ListPer1000: 0.0006, GetPer1000: 0.003, Source: "docs.aws.amazon.com/ebs/latest/userguide/ebsapi-pricing.html (us-east-1 list prices)"},
}

// PricesFor returns the list prices of region and whether the table knows
// it; when it does not, the prices are us-east-1's.
func PricesFor(region string) (Prices, bool) {
	if p, ok := table[region]; ok {
		return p, true
	}
	return table[DefaultRegion], false
}

// Regions returns the Regions the price table knows, sorted.
func Regions() []string {
	var out []string
	for r := range table {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

const (
	// MaxPageSize is the most blocks one ListSnapshotBlocks call returns
	// (MaxResults runs from 100 to 10,000), so the fewest List calls.
	MaxPageSize = 10000
	// DefaultGetPerSecond is the default GetSnapshotBlock quota per
	// snapshot: 1,000 requests per second.
	DefaultGetPerSecond = 1000
	// DefaultListPerSecond is the default ListSnapshotBlocks quota per
	// account: 50 requests per second.
	DefaultListPerSecond = 50
)

// Inputs describe one acquisition to price. Zero values take the defaults
// noted on each field.
type Inputs struct {
	SnapshotID string
	// Region picks the prices; empty or unknown means us-east-1's.
	Region string
	// VolumeSizeGiB is the VolumeSize the listing reports.
	VolumeSizeGiB int64
	// Blocks is how many blocks the snapshot lists, which is how many
	// GetSnapshotBlock calls it takes. For a worst case before listing,
	// pass block.Slots(VolumeSizeGiB).
	Blocks int64
	// BlockSize is the listing's BlockSize; 0 means block.Size.
	BlockSize int64
	// PageSize is the MaxResults of each List call; 0 means MaxPageSize.
	PageSize int64
	// ListRequests, when above 0, is the List calls a listing of the
	// snapshot actually made, which replaces the estimate from PageSize:
	// AWS returns short (even empty) pages over sparse stretches of a
	// volume, so a sparse 64 TiB snapshot takes far more calls than its
	// blocks fill pages, and an acquisition lists it the same way.
	ListRequests int64
	// ListPricePer1000 and GetPricePer1000 override the Region's prices
	// when not nil.
	ListPricePer1000 *float64
	GetPricePer1000  *float64
	// GetPerSecond and ListPerSecond are the request rates the quotas
	// allow; 0 means DefaultGetPerSecond and DefaultListPerSecond.
	GetPerSecond  float64
	ListPerSecond float64
}

// Estimate is what an acquisition will cost and take, at the least.
type Estimate struct {
	SnapshotID      string `json:"snapshot_id,omitempty"`
	Region          string `json:"region"`
	VolumeSizeGiB   int64  `json:"volume_size_gib"`
	VolumeSizeBytes int64  `json:"volume_size_bytes"`
	BlockSize       int64  `json:"block_size"`
	// VolumeBlocks is how many block slots the volume has; Blocks of them
	// are listed.
	VolumeBlocks  int64 `json:"volume_blocks"`
	Blocks        int64 `json:"blocks"`
	DownloadBytes int64 `json:"download_bytes"`
	PageSize      int64 `json:"list_page_size"`
	ListRequests  int64 `json:"list_requests"`
	GetRequests   int64 `json:"get_requests"`

	PriceListPer1000 float64 `json:"price_list_per_1000"`
	PriceGetPer1000  float64 `json:"price_get_per_1000"`
	// PriceSource says where the prices come from: the table's source, or
	// "override".
	PriceSource string `json:"price_source"`
	// PriceAssumed is set when the Region is not in the table and
	// us-east-1's prices were used instead.
	PriceAssumed     bool    `json:"price_assumed"`
	ListCostUSD      float64 `json:"list_cost_usd"`
	GetCostUSD       float64 `json:"get_cost_usd"`
	EstimatedCostUSD float64 `json:"estimated_cost_usd"`

	QuotaBlocksPerSecond float64 `json:"quota_blocks_per_second"`
	QuotaListPerSecond   float64 `json:"quota_list_per_second"`
	ListSeconds          float64 `json:"list_seconds"`
	GetSeconds           float64 `json:"get_seconds"`
	// EstimatedSeconds is ListSeconds + GetSeconds: the time the quotas
	// alone impose when the listing finishes before the fetching starts.
	// Latency, retries and throttling only add to it.
	EstimatedSeconds float64 `json:"estimated_seconds"`
}

// Compute prices one acquisition. The figures are a floor: AWS may return
// pages with fewer blocks than asked for (each one another List call), and
// retries are billed too. Data transfer to EC2 in the same Region is free
// on non-FIPS endpoints and not counted; NAT gateways and PrivateLink
// charge their own fees.
func Compute(in Inputs) Estimate {
	e := Estimate{
		SnapshotID:           in.SnapshotID,
		Region:               in.Region,
		VolumeSizeGiB:        in.VolumeSizeGiB,
		VolumeSizeBytes:      in.VolumeSizeGiB << 30, // VolumeSize is in GiB
		BlockSize:            orInt(in.BlockSize, block.Size),
		Blocks:               max(in.Blocks, 0),
		PageSize:             orInt(in.PageSize, MaxPageSize),
		QuotaBlocksPerSecond: orFloat(in.GetPerSecond, DefaultGetPerSecond),
		QuotaListPerSecond:   orFloat(in.ListPerSecond, DefaultListPerSecond),
	}
	if e.Region == "" {
		e.Region = DefaultRegion
	}
	e.VolumeBlocks = e.VolumeSizeBytes / e.BlockSize
	e.DownloadBytes = e.Blocks * e.BlockSize
	e.GetRequests = e.Blocks
	// The listing ends only on a page without NextToken, so even an empty
	// snapshot takes one call.
	e.ListRequests = max(1, (e.Blocks+e.PageSize-1)/e.PageSize)
	if in.ListRequests > 0 {
		e.ListRequests = in.ListRequests
	}

	prices, known := PricesFor(e.Region)
	e.PriceListPer1000, e.PriceGetPer1000, e.PriceSource = prices.ListPer1000, prices.GetPer1000, prices.Source
	e.PriceAssumed = !known
	if in.ListPricePer1000 != nil || in.GetPricePer1000 != nil {
		e.PriceSource, e.PriceAssumed = "override", false
		if in.ListPricePer1000 != nil {
			e.PriceListPer1000 = *in.ListPricePer1000
		}
		if in.GetPricePer1000 != nil {
			e.PriceGetPer1000 = *in.GetPricePer1000
		}
	}
	// Costs are summed in whole nano-dollars per request, so that the
	// figures are exact for every price with at most six decimals per
	// 1,000 requests, instead of carrying float rounding into reports.
	listNano := nanoPerRequest(e.PriceListPer1000)
	getNano := nanoPerRequest(e.PriceGetPer1000)
	e.ListCostUSD = usd(e.ListRequests * listNano)
	e.GetCostUSD = usd(e.GetRequests * getNano)
	e.EstimatedCostUSD = usd(e.ListRequests*listNano + e.GetRequests*getNano)

	e.ListSeconds = micro(float64(e.ListRequests) / e.QuotaListPerSecond)
	e.GetSeconds = micro(float64(e.GetRequests) / e.QuotaBlocksPerSecond)
	e.EstimatedSeconds = micro(e.ListSeconds + e.GetSeconds)
	return e
}

// micro rounds seconds to the microsecond, so that sums print as the
// decimal figures they are rather than with float noise.
func micro(s float64) float64 { return math.Round(s*1e6) / 1e6 }

// nanoPerRequest turns a price per 1,000 requests in dollars into
// nano-dollars per request: × 1e9 nano-dollars per dollar ÷ 1,000.
func nanoPerRequest(per1000 float64) int64 {
	return int64(math.Round(per1000 * 1e6))
}

func usd(nano int64) float64 { return float64(nano) / 1e9 }

func orInt(v, def int64) int64 {
	if v <= 0 {
		return def
	}
	return v
}

func orFloat(v, def float64) float64 {
	if v <= 0 {
		return def
	}
	return v
}
