// Package image verifies a finished image, raw (split or not) or E01, as
// the verify command does: it recomputes the image's hashes and compares
// them with every record of them, inside the E01 and in the hash files
// beside the image. The formats themselves live in raw and ewf.
package image
