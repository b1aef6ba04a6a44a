// Package raw owns the raw (dd) image: one sparse file, or fixed-size
// segments FILE.001, FILE.002, … that concatenate to it, with its checksum
// files FILE.md5, FILE.sha1 and FILE.sha256 beside it. It is a sink for
// the ordered stream of verified blocks (Writer, used by export), sinks
// for blocks arriving in any order from concurrent workers (ListedWriter,
// used by acquire --image, which hashes the image in stream from the
// blocks announced to it; RandomWriter, which can be suspended and
// resumed and hashes the image by reading it back), and a source (Reader,
// an io.ReaderAt over the whole image). Blocks of zeros and blocks never written are holes, so an
// image takes only the disk space of its data. Images are written under
// partial names (see PartialSuffix) and appear under their final names
// complete or not at all. It knows nothing of AWS.
package raw
