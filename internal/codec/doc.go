// Package codec owns the layers a stored block passes through on its way
// to disk and back: compression (zstd or gzip) and then encryption (age),
// each a plain io.WriteCloser or io.Reader shaped like age.Encrypt and
// age.Decrypt, so every stored file stays a standard file that `zstd -d`,
// `gunzip` and `age -d` open. It also owns the keys those layers use
// (age and SSH recipients and identities, passphrase-protected key files)
// and where a passphrase may come from (a file, an environment variable
// or a terminal prompt, never a flag). Reading never yields more than one
// block: a stream that expands beyond block.Size, is truncated, or was
// altered is an error.
package codec
