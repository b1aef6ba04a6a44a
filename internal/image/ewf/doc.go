// Package ewf owns the E01 image format (Expert Witness Compression Format,
// EnCase 6 style, per Joachim Metz's "Expert Witness Compression Format
// (EWF)" specification in libyal/libewf and as libewf's ewfacquire writes
// it): a Writer that turns one ordered stream of media bytes into segment
// files BASE.E01, BASE.E02, … (zlib-compressed 32 KiB chunks; header2 and
// header case metadata; volume/data, sectors, table/table2, digest, hash
// and next/done sections), and a Reader that opens such a set, whoever
// wrote it, serves it as an io.ReaderAt with every chunk checked, and
// re-verifies the stored MD5 and SHA-1. The Reader refuses a section
// whose own checksum fails where libewf does (it steps over a table only
// when its table2 mirror is intact); Check, for the verify command, goes
// further and reports every damage: every checksum the format keeps,
// table2 against table, the placement of every chunk, and every stored
// hash that is missing, unreadable or different. Unusually for a sink,
// the Writer starts goroutines of its own: zlib compression of the chunks
// is the slowest step of writing an E01, and spreading it over
// Options.Workers goroutines is what lets it keep up with an acquisition.
// Chunks travel in batches from a fixed pool, so memory stays bounded, and are placed in
// the files strictly in order, so the output is byte-identical whatever
// the number of workers; MD5, SHA-1 and SHA-256 each run in their own
// goroutine over the same ordered stream. Every one of these goroutines
// ends in Close or Abort, one of which must be called.
package ewf
