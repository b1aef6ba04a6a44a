// Package diff owns what changed between two snapshots of one lineage:
// it merges the blocks ListChangedBlocks reports into runs of one kind
// (added: only the new snapshot lists the block; removed: only the base
// does; changed: both do) with their totals; renders them as text, JSON
// and the original tool's blockindex|offset|length changelog; maps them
// to the partitions of the base's partition table; and, given the bytes
// of both snapshots, names the files and file-system structures whose
// data or metadata differ (package fsmap reads the file systems). Both
// snapshots' bytes are volume.Volumes: the new one may come from its own
// evidence or image, or be the base's with the changed blocks fetched on
// demand (a volume.Overlay built from Patches), so only the blocks that a
// file system structure or a changed file needs are fetched. It does not
// talk to AWS: the command supplies the changes and a Fetch.
package diff
