// Package codecbench measures internal/codec on realistic blocks: the
// non-zero blocks of a small ext4 disk built with mkfs.ext4 -d from
// system files, plus random and zero blocks. It reports the speed and the
// compression ratio of each stored form next to what the original tool
// did (gzip per block, level 9). It holds benchmarks only; run.sh runs
// them with the settings the figures in its header were taken with.
package codecbench
