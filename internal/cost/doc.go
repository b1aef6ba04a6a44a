// Package cost owns the price and time model of an acquisition through the
// EBS direct APIs: how many ListSnapshotBlocks and GetSnapshotBlock calls
// a snapshot needs, what they cost at a Region's list prices, how many
// bytes come down, and how long the per-snapshot quotas make it take at
// the least. It holds the per-Region price table and nothing but pure
// functions: it makes no calls and reads no files.
package cost
