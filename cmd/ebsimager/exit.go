package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"syscall"

	"github.com/ebsimager/ebsimager/internal/acquire"
	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/codec"
	"github.com/ebsimager/ebsimager/internal/dirlock"
	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/manifest"
	"github.com/ebsimager/ebsimager/internal/store"
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
	exitInvalid     = 7   // malformed snapshot id or a request AWS rejects as invalid
	exitConflict    = 8   // output exists (other snapshot, or without --force)
	exitLocalIO     = 9   // local disk: full, unwritable, missing
	exitWrongKey    = 10  // wrong passphrase or identity
	exitQuota       = 11  // an AWS service quota is exhausted
	exitBusy        = 12  // another ebsimager process holds the output (dirlock)
	exitUnrecorded  = 13  // the evidence verified, but the step could not be recorded
	exitInterrupted = 130 // Ctrl-C or SIGTERM; nothing half-written is left
)

const exitCodesHelp = `EXIT STATUS
  0    success
  1    other error
  2    bad flags or arguments
  3    incomplete: some blocks failed after every retry (named); run again to resume
  4    verification failed: evidence or image does not match its record
  5    access denied by AWS (IAM policy, KMS key)
  6    not found: no such snapshot, or the block is not allocated
  7    invalid input: malformed snapshot id, or a request AWS rejects as invalid
  8    output conflict: evidence of another snapshot, or an existing file without --force
  9    local I/O error: disk full, output not writable
  10   wrong or missing passphrase or identity
  11   AWS service quota exhausted
  12   busy: another ebsimager process (named by PID) is writing the same output
  13   verified OK, but the verification could not be appended to the record
  130  interrupted (Ctrl-C); nothing half-written is left, run again to resume`

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
		wrongKey   wrongKeyError
		errno      syscall.Errno
		held       *dirlock.HeldError
		unrecorded unrecordedError
	)
	switch {
	case errors.Is(err, context.Canceled) || ctx.Err() != nil:
		return exitInterrupted
	case errors.As(err, &usage):
		return exitUsage
	case errors.As(err, &incompl), errors.Is(err, store.ErrIncomplete):
		return exitIncomplete
	case errors.As(err, &mismatch), errors.As(err, &storeMis), errors.Is(err, manifest.ErrCorrupt):
		return exitMismatch
	case errors.As(err, &other), errors.Is(err, store.ErrNotEvidence), errors.Is(err, fs.ErrExist):
		return exitConflict
	case errors.As(err, &badID):
		return exitInvalid
	case errors.As(err, &wrongKey), errors.Is(err, codec.ErrWrongKey), errors.Is(err, store.ErrNeedKey):
		return exitWrongKey
	case errors.Is(err, errNotAllocated):
		return exitNotFound
	case errors.As(err, &held):
		return exitBusy
	case errors.As(err, &unrecorded):
		return exitUnrecorded
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

// printError writes the error in the tool's style: "ebsimager: ..." and
// an optional "ebsimager: hint: ..." line.
func printError(w io.Writer, err error) {
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(w, "ebsimager: interrupted; nothing half-written was left, run the same command again to resume")
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
	if hint != "" {
		fmt.Fprintf(w, "ebsimager: hint: %s\n", hint)
	}
}

func defaultHint(err error) string {
	var (
		usage usageError
		other *store.OtherSnapshotError
	)
	switch {
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
