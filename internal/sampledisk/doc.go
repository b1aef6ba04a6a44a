// Package sampledisk owns ebsimager's built-in sample evidence disk: a
// sparse 1 GiB GPT disk with an ext4 and an NTFS partition holding a few
// known files, built by make-sample-disk.sh with the real file-system tools
// and committed zstd-compressed beside the list of its files (partition,
// path, size, SHA-256). The demo and the end-to-end tests extract it instead
// of needing root, loop devices or AWS; the subpackage sampletest rebuilds it
// from the script at test time for tests that must prove it is genuine.
package sampledisk
