package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/store"
	"github.com/ebsimager/ebsimager/internal/ui"
)

func newVerifyCommand() *cobra.Command {
	var (
		asJSON bool
		quiet  bool
		keys   openOptions
	)
	cmd := &cobra.Command{
		Use:   "verify DIR|IMAGE",
		Short: "Re-check an evidence directory against its manifest, or an image against its hashes",
		Long: `Re-hash every stored block against the manifest and against its file name,
check that no block is missing or extra and that the manifest itself is
intact (its SHA-256 file, its header, its totals). Every difference is
named. Exits 0 only when everything matches, 4 otherwise.

Given an image instead (raw FILE, split FILE.001, or BASE.E01), verify
recomputes its MD5, SHA-1 and SHA-256 and compares them with every record
of them: the hashes stored inside an E01 (whose chunk checksums are also
checked) and the .md5/.sha1/.sha256 files beside the image.

Encrypted evidence can be verified without any key: every stored file is
checked against the SHA-256 of its stored bytes in the manifest. With
--identity or the passphrase, each block's content is also checked against
the SHA-256 AWS served it with.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if fi, err := os.Stat(args[0]); err == nil && !fi.IsDir() {
				return verifyImage(cmd, args[0], asJSON, quiet)
			}
			started := time.Now()
			ev, err := store.Open(args[0])
			if err != nil {
				return err
			}
			unseal, err := keys.unseal(ev, false)
			if err != nil {
				return err
			}
			status := ui.NewStatus(cmd.ErrOrStderr(), quiet || asJSON, 5*time.Second)
			res, err := ev.Verify(cmd.Context(), unseal, func(done int64) {
				if done%1024 == 0 {
					status.Update(fmt.Sprintf("verified %d blocks", done))
				}
			})
			status.Done("")
			if err != nil {
				return err
			}
			step := newStep(report.StepVerify, started, nil)
			step.Verify = &report.Verify{Target: args[0], OK: res.OK(), Blocks: res.Blocks, StoredChecked: res.StoredChecked,
				ContentChecked: res.ContentChecked, Encrypted: res.Encrypted, Problems: []report.Problem{}, MoreProblems: res.MoreProblems}
			for _, p := range res.Problems {
				step.Verify.Problems = append(step.Verify.Problems, report.Problem(p))
			}
			if !res.OK() {
				step.Outcome, step.Error = "failed", fmt.Sprintf("%d problems", int64(len(res.Problems))+res.MoreProblems)
			}
			if err := appendStep(args[0], step); err != nil {
				return fmt.Errorf("recording the verification: %w", err)
			}
			w := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				if err := enc.Encode(struct {
					OK bool `json:"ok"`
					*store.VerifyResult
				}{res.OK(), res}); err != nil {
					return err
				}
			} else {
				for _, p := range res.Problems {
					if p.Index >= 0 {
						fmt.Fprintf(w, "%-8s block %d  %s: %s\n", p.Kind, p.Index, p.Name, p.Detail)
					} else {
						fmt.Fprintf(w, "%-8s %s: %s\n", p.Kind, p.Name, p.Detail)
					}
				}
				if res.MoreProblems > 0 {
					fmt.Fprintf(w, "... and %d more problems\n", res.MoreProblems)
				}
				fmt.Fprintf(w, "%s: %d blocks in the manifest, %d stored files matched, %d block contents matched %s\n",
					args[0], res.Blocks, res.StoredChecked, res.ContentChecked, contentSource(ev.Meta))
				if res.Encrypted > 0 && res.ContentChecked < res.Blocks {
					fmt.Fprintf(w, "%d blocks are encrypted: their stored bytes were checked; give --identity or the passphrase to check their content too\n", res.Encrypted)
				}
				fmt.Fprintf(w, "manifest sha256 %s\n", res.ManifestSHA256)
			}
			if !res.OK() {
				return mismatchError{fmt.Sprintf("verification FAILED: %d problems in %s", int64(len(res.Problems))+res.MoreProblems, args[0])}
			}
			if !asJSON {
				fmt.Fprintln(w, "verification OK")
			}
			return nil
		},
	}
	keys.addFlags(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print no progress")
	return cmd
}
