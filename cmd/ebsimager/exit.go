package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/acquire"
	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/bucket"
	"github.com/ebsimager/ebsimager/internal/casework"
	"github.com/ebsimager/ebsimager/internal/codec"
	"github.com/ebsimager/ebsimager/internal/dirlock"
	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/fsys"
	"github.com/ebsimager/ebsimager/internal/manifest"
	"github.com/ebsimager/ebsimager/internal/preflight"
	"github.com/ebsimager/ebsimager/internal/preserve"
	"github.com/ebsimager/ebsimager/internal/s3store"
	"github.com/ebsimager/ebsimager/internal/snap4n6ir"
	"github.com/ebsimager/ebsimager/internal/store"
	"github.com/ebsimager/ebsimager/internal/volume"
)

// Exit codes. They are documented in the root command's help and in the
// README; keep the three in step.
const (
	exitOK          = 0
	exitError       = 1   // anything not listed below
	exitUsage       = 2   // bad flags or arguments
	exitIncomplete  = 3   // some blocks failed after every retry; run again to resume
	exitMismatch    = 4   // verification found evidence that does not match its record
	exitDenied      = 5   // AWS refused access (IAM, KMS)
	exitNotFound    = 6   // no such snapshot, or block not allocated
	exitInvalid     = 7   // malformed snapshot id, index beyond the volume, bad import folder, or a request AWS rejects
	exitConflict    = 8   // output exists (other snapshot, or without --force)
	exitLocalIO     = 9   // local disk: full, unwritable, missing
	exitWrongKey    = 10  // wrong passphrase or identity
	exitQuota       = 11  // an AWS service quota is exhausted
	exitBusy        = 12  // another ebsimager process holds the output (dirlock)
	exitUnrecorded  = 13  // the evidence verified, but the step could not be recorded
	exitFileSystem  = 14  // a file system that cannot be read: corrupt (named), encrypted or unsupported
	exitUnreadable  = 15  // the direct APIs cannot read the snapshot: pending or failed, archived, public, Outposts local
	exitInterrupted = 130 // Ctrl-C or SIGTERM; nothing half-written is left
)

const exitCodesHelp = `EXIT STATUS
  0    success
  1    other error
  2    bad flags or arguments
  3    incomplete: some blocks failed after every retry (named); an evidence
       directory keeps the rest and resumes, a direct image starts over
  4    verification failed: evidence or image does not match its record
  5    access denied by AWS (IAM policy, KMS key)
  6    not found: no such snapshot, the block is not allocated, or no such partition,
       file, directory or stream in a file system
  7    invalid input: malformed snapshot id, block index beyond the volume, an import-4n6ir
       folder the original tool cannot have written, a request AWS rejects as invalid, or
       a path that names a directory where a file is needed (or the reverse)
  8    output conflict: evidence of another snapshot, or an existing file without --force
  9    local I/O error: disk full, output not writable
  10   wrong or missing passphrase or identity
  11   AWS service quota exhausted
  12   busy: another ebsimager process (named by PID) is writing the same output
  13   verified OK, but the verification could not be appended to the record
  14   the file system cannot be read: a damaged structure (named), an encrypted volume
       (LUKS, BitLocker), or a feature the reader does not support
  15   the snapshot cannot be read through the EBS direct APIs: still pending or failed
       (or not completed before --timeout), archived (restore it first), public or an
       Outposts local snapshot (copy it first); nothing was fetched
  130  interrupted (Ctrl-C, SIGTERM); nothing half-written is left; the message
       says whether running again resumes or starts over`

// usageError marks errors in flags or arguments.
type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// hintError carries a hint line for the user.
type hintError struct {
	error
	hint string
}

func (e hintError) Unwrap() error { return e.error }

func withHint(err error, hint string) error { return hintError{err, hint} }

// mismatchError reports a failed verification (exit 4); its details were
// already printed.
type mismatchError struct{ msg string }

func (e mismatchError) Error() string { return e.msg }

// unrecordedError is exit 13: the evidence itself is fine (the verdict
// was printed), but the step could not be appended to the record.
type unrecordedError struct{ error }

func (e unrecordedError) Unwrap() error { return e.error }

// wrongKeyError is exit 10.
type wrongKeyError struct{ error }

func (e wrongKeyError) Unwrap() error { return e.error }

func exitCode(ctx context.Context, err error) int {
	if err == nil {
		return exitOK
	}
	var (
		usage      usageError
		incompl    *acquire.IncompleteError
		mismatch   mismatchError
		storeMis   *store.Mismatch
		other      *store.OtherSnapshotError
		badID      *block.InvalidSnapshotIDError
		badTarget  *casework.TargetError
		beyond     *block.BeyondVolumeError
		badFolder  *snap4n6ir.FolderError
		wrongKey   wrongKeyError
		errno      syscall.Errno
		held       *dirlock.HeldError
		unrecorded unrecordedError
		unreadable *preflight.Error
		notDone    *preserve.NotCompletedError
		failedSnap *preserve.StateError
	)
	switch {
	case errors.Is(err, context.Canceled) || ctx.Err() != nil:
		return exitInterrupted
	case errors.As(err, &usage):
		return exitUsage
	case errors.As(err, &unreadable) && unreadable.Reason == preflight.KMSDenied:
		return exitDenied
	case errors.As(err, &unreadable), errors.As(err, &notDone), errors.As(err, &failedSnap):
		return exitUnreadable
	case errors.As(err, &incompl), errors.Is(err, store.ErrIncomplete), errors.Is(err, casework.ErrWorkersMissing):
		return exitIncomplete
	case errors.As(err, &mismatch), errors.As(err, &storeMis), errors.Is(err, manifest.ErrCorrupt), errors.Is(err, volume.ErrCorrupt):
		return exitMismatch
	case errors.As(err, &other), errors.Is(err, store.ErrNotEvidence), errors.Is(err, fs.ErrExist), errors.Is(err, bucket.ErrExists):
		return exitConflict
	case errors.As(err, &badID), errors.As(err, &badTarget), errors.As(err, &beyond), errors.As(err, &badFolder), errors.Is(err, s3store.ErrNoObjectLock):
		return exitInvalid
	case errors.As(err, &wrongKey), errors.Is(err, codec.ErrWrongKey), errors.Is(err, store.ErrNeedKey), errors.Is(err, codec.ErrNoSecret):
		return exitWrongKey
	case errors.Is(err, errNotAllocated), errors.Is(err, fsys.ErrNotFound):
		return exitNotFound
	case errors.Is(err, fsys.ErrNotDir), errors.Is(err, fsys.ErrIsDir):
		return exitInvalid
	case errors.Is(err, fsys.ErrCorrupt), errors.Is(err, fsys.ErrEncrypted), errors.Is(err, fsys.ErrUnsupported):
		return exitFileSystem
	case errors.As(err, &held):
		return exitBusy
	case errors.As(err, &unrecorded):
		return exitUnrecorded
	}
	if code, ok := preserveExit(err); ok {
		return code
	}
	switch ebs.KindOf(err) {
	case ebs.KindAccessDenied:
		return exitDenied
	case ebs.KindNotFound:
		return exitNotFound
	case ebs.KindInvalid:
		return exitInvalid
	case ebs.KindQuota:
		return exitQuota
	}
	if errors.As(err, &errno) || errors.Is(err, fs.ErrPermission) || errors.Is(err, fs.ErrNotExist) {
		return exitLocalIO
	}
	var pathErr *fs.PathError
	if errors.As(err, &pathErr) {
		return exitLocalIO
	}
	return exitError
}

// printError writes the error of command cmd (nil when none ran) in the
// tool's style: "ebsimager: ..." and an optional "ebsimager: hint: ..."
// line.
func printError(w io.Writer, cmd *cobra.Command, err error) {
	if errors.Is(err, context.Canceled) {
		fmt.Fprintf(w, "ebsimager: interrupted; %s\n", interruptedMessage(cmd))
		return
	}
	var mismatch mismatchError
	if errors.As(err, &mismatch) {
		fmt.Fprintf(w, "ebsimager: %s\n", mismatch.msg)
		return
	}
	fmt.Fprintf(w, "ebsimager: %s\n", strings.ReplaceAll(err.Error(), "\n", "\nebsimager: "))
	hint := ""
	var h hintError
	if errors.As(err, &h) {
		hint = h.hint
	} else {
		hint = defaultHint(err)
	}
	if errors.Is(err, syscall.ENOSPC) && !resumes(cmd) && !errors.As(err, &h) {
		hint = "the disk is full; free space and run the same command again: it starts over"
	}
	if hint != "" {
		fmt.Fprintf(w, "ebsimager: hint: %s\n", hint)
	}
}

func defaultHint(err error) string {
	var (
		usage      usageError
		other      *store.OtherSnapshotError
		unreadable *preflight.Error
	)
	switch {
	case errors.As(err, &unreadable):
		return unreadable.Hint()
	case errors.As(err, &usage):
		return "see --help"
	case errors.As(err, &other):
		return "choose another --out, or pass --force to replace that evidence"
	case errors.Is(err, syscall.ENOSPC):
		return "the disk is full; free space and run the same command again to resume"
	case errors.Is(err, ebs.ErrNoRegion):
		return "pass --region, or set AWS_REGION"
	}
	switch ebs.KindOf(err) {
	case ebs.KindAccessDenied:
		if ebs.Reason(err) == "DEPENDENCY_ACCESS_DENIED" {
			return "the snapshot is encrypted: the caller also needs kms:Decrypt on its KMS key"
		}
		return "the caller needs ebs:ListSnapshotBlocks and ebs:GetSnapshotBlock on the snapshot"
	case ebs.KindNotFound:
		return "check the snapshot id and --region"
	}
	return ""
}

// interruptedMessage says what an interruption of cmd left behind and
// what running it again does: only the commands that keep their work
// resume.
func interruptedMessage(cmd *cobra.Command) string {
	const (
		resumesText = "nothing half-written was left; run the same command again to resume"
		startOver   = "nothing half-written was left; run the same command again: it starts over"
		readOnly    = "nothing was written or recorded; run the same command again: it starts over"
	)
	if cmd == nil {
		return startOver
	}
	switch {
	case cmd.Name() == "acquire" && !resumes(cmd):
		return "a direct image does not resume: the partial image was removed; run the same command again: it starts over " +
			"(acquire into an evidence directory, --out DIR, to keep the verified blocks)"
	case cmd.Name() == "acquire":
		return "the verified blocks are kept; run the same command again to resume"
	case cmd.Name() == "snapshot":
		return snapshotInterrupted(cmd)
	case resumes(cmd):
		return resumesText
	}
	switch cmd.Name() {
	case "verify", "inspect", "budget":
		return readOnly
	}
	return startOver
}

// resumes reports whether running cmd again continues the work an
// interruption or a failure left: an evidence directory does, a direct
// image or an export starts over.
func resumes(cmd *cobra.Command) bool {
	if cmd == nil {
		return false
	}
	switch cmd.Name() {
	case "acquire":
		f := cmd.Flags().Lookup("image")
		return f == nil || f.Value.String() == ""
	case "compress", "uncompress", "encrypt", "decrypt", "import-4n6ir":
		return true
	}
	return false
}
