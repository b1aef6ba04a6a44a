package inspect_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/inspect"
	"github.com/ebsimager/ebsimager/internal/testenv"
)

// fixtureDir holds file-system images shared by the tests of one run.
var fixtureDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "inspect-fixtures-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fixtureDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// run runs a tool and returns its standard output, failing the test on a
// non-zero exit.
func run(t testing.TB, stdin string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "TZ=UTC", "LC_ALL=C")
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return string(out)
}

// fields parses "Key: value" lines (fsstat, dumpe2fs, xfs_db) into a map,
// keeping the first value of each key, with surrounding blanks trimmed.
func fields(out string) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		k = strings.TrimSpace(k)
		if _, seen := m[k]; !seen {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// blkid probes the file system at offset of path with util-linux's
// low-level prober and returns its NAME=value pairs.
func blkid(t testing.TB, path string, offset, size int64) map[string]string {
	t.Helper()
	tools := testenv.RequireTool(t, "blkid")
	args := []string{"-p", "-o", "export", "-O", strconv.FormatInt(offset, 10)}
	if size > 0 {
		args = append(args, "-S", strconv.FormatInt(size, 10))
	}
	cmd := exec.Command(tools[0], append(args, path)...)
	out, err := cmd.Output()
	if err != nil {
		// blkid exits 2 when it finds nothing.
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 2 {
			return map[string]string{}
		}
		t.Fatalf("blkid %s: %v", path, err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = strings.ReplaceAll(v, `\ `, " ")
		}
	}
	return m
}

var (
	fixtureMu sync.Mutex
	fixtures  = map[string]string{}
)

// fixture returns the image made by build under name, building it once per
// test run.
func fixture(t testing.TB, name string, build func(path string)) string {
	t.Helper()
	fixtureMu.Lock()
	defer fixtureMu.Unlock()
	if p, ok := fixtures[name]; ok {
		return p
	}
	p := filepath.Join(fixtureDir, name)
	build(p)
	fixtures[name] = p
	return p
}

func truncate(t testing.TB, path string, size int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// The fixtures: each file system made by its own mkfs, with a known label
// and, where the tool lets us choose, a known UUID or serial.
const (
	ext4UUID   = "7e57e4a1-0001-4000-8000-00000000e4e4"
	ext3UUID   = "7e57e4a1-0003-4000-8000-00000000e3e3"
	ext2UUID   = "7e57e4a1-0002-4000-8000-00000000e2e2"
	xfsUUID    = "7e57e4a1-0005-4000-8000-0000000000f5"
	btrfsUUID  = "7e57e4a1-0006-4000-8000-00000000b7f5"
	swapUUID   = "7e57e4a1-0007-4000-8000-000000005a9f"
	luks1UUID  = "7e57e4a1-0008-4000-8000-0000000001c1"
	luks2UUID  = "7e57e4a1-0009-4000-8000-0000000001c2"
	fat32ID    = "1234ABCD"
	fat16ID    = "2345BCDE"
	fat12ID    = "3456CDEF"
	mountPoint = "/mnt/evidence"
	// 2024-03-05 06:07:08 UTC, set as the ext4 last mount time.
	lastMount = "20240305060708"
)

func extImage(t testing.TB, kind string) string {
	return fixture(t, kind+".img", func(p string) {
		sizes := map[string]int64{"ext4": 32 << 20, "ext3": 16 << 20, "ext2": 8 << 20}
		uuids := map[string]string{"ext4": ext4UUID, "ext3": ext3UUID, "ext2": ext2UUID}
		tools := testenv.RequireTool(t, "mkfs."+kind, "debugfs")
		truncate(t, p, sizes[kind])
		run(t, "", tools[0], "-F", "-q", "-L", "ev"+kind, "-U", uuids[kind], "-M", mountPoint, p)
		if kind == "ext4" {
			run(t, "", tools[1], "-w", "-R", "ssv mtime "+lastMount, p)
		}
	})
}

func ntfsImage(t testing.TB) string {
	return fixture(t, "ntfs.img", func(p string) {
		tools := testenv.RequireTool(t, "mkntfs")
		truncate(t, p, 32<<20)
		run(t, "", tools[0], "-q", "-F", "-f", "-L", "EVNTFS", "-s", "512", "-c", "4096", p)
	})
}

// xfsImage is 300 MiB: mkfs.xfs refuses smaller file systems since
// xfsprogs 5.19. The file is sparse.
func xfsImage(t testing.TB) string {
	return fixture(t, "xfs.img", func(p string) {
		tools := testenv.RequireTool(t, "mkfs.xfs")
		truncate(t, p, 300<<20)
		run(t, "", tools[0], "-q", "-f", "-L", "EVXFS", "-m", "uuid="+xfsUUID, p)
	})
}

func fatImage(t testing.TB, bits int) string {
	return fixture(t, fmt.Sprintf("fat%d.img", bits), func(p string) {
		tools := testenv.RequireTool(t, "mkfs.vfat")
		args := map[int][]string{
			12: {"-F", "12", "-n", "EVFAT12", "-i", fat12ID},
			16: {"-F", "16", "-n", "EVFAT16", "-i", fat16ID},
			// One sector per cluster: FAT32 needs 65525 clusters.
			32: {"-F", "32", "-s", "1", "-n", "EVFAT32", "-i", fat32ID},
		}
		sizes := map[int]int64{12: 1 << 20, 16: 16 << 20, 32: 40 << 20}
		truncate(t, p, sizes[bits])
		run(t, "", tools[0], append(args[bits], p)...)
	})
}

func exfatImage(t testing.TB) string {
	return fixture(t, "exfat.img", func(p string) {
		tools := testenv.RequireTool(t, "mkfs.exfat")
		truncate(t, p, 8<<20)
		run(t, "", tools[0], "-L", "EVEXFAT", p)
	})
}

func btrfsImage(t testing.TB) string {
	return fixture(t, "btrfs.img", func(p string) {
		tools := testenv.RequireTool(t, "mkfs.btrfs")
		truncate(t, p, 120<<20) // mkfs.btrfs's minimum is about 114 MiB
		run(t, "", tools[0], "-q", "-f", "-L", "evbtrfs", "-U", btrfsUUID, p)
	})
}

func swapImage(t testing.TB) string {
	return fixture(t, "swap.img", func(p string) {
		tools := testenv.RequireTool(t, "mkswap")
		truncate(t, p, 4<<20)
		run(t, "", tools[0], "-L", "evswap", "-U", swapUUID, p)
	})
}

// luksImage formats with PBKDF2 at 1000 iterations: the default Argon2
// would take a second and a gigabyte for a header nobody opens.
func luksImage(t testing.TB, version int) string {
	return fixture(t, fmt.Sprintf("luks%d.img", version), func(p string) {
		tools := testenv.RequireTool(t, "cryptsetup")
		key := p + ".key"
		if err := os.WriteFile(key, []byte("evidence"), 0o600); err != nil {
			t.Fatal(err)
		}
		args := []string{"luksFormat", "--batch-mode", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--key-file", key}
		if version == 1 {
			truncate(t, p, 4<<20)
			args = append(args, "--type", "luks1", "--uuid", luks1UUID)
		} else {
			truncate(t, p, 20<<20) // LUKS2 reserves 16 MiB of header by default
			args = append(args, "--type", "luks2", "--uuid", luks2UUID, "--label", "evluks")
		}
		run(t, "", tools[0], append(args, p)...)
	})
}

func isoImage(t testing.TB) string {
	return fixture(t, "iso9660.img", func(p string) {
		tools := testenv.RequireTool(t, "genisoimage")
		src := p + ".d"
		if err := os.MkdirAll(src, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, "README.TXT"), []byte("evidence\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		run(t, "", tools[0], "-quiet", "-V", "EVISO", "-o", p, src)
	})
}

// lvmImage writes an LVM2 physical-volume label by hand (no pvcreate: it
// needs a block device): "LABELONE" in sector 1, then the PV header with a
// 32-character UUID and the device size. blkid checks the result.
func lvmImage(t testing.TB) string {
	return fixture(t, "lvm2.img", func(p string) {
		img := make([]byte, 4<<20) // blkid skips RAID-type labels on devices of 1 MiB or less
		sec := img[512:1024]
		copy(sec, "LABELONE")
		sec[8] = 1                          // this label's sector number
		copy(sec[20:], []byte{32, 0, 0, 0}) // PV header offset within the sector
		copy(sec[24:], "LVM2 001")
		copy(sec[32:], "AbCdEf0123456789GhIjKlMnOpQrStUv")
		copy(sec[64:], []byte{0, 0, 64, 0, 0, 0, 0, 0}) // device size 4 MiB
		// LVM2 checks a CRC over the rest of the sector (from byte 20)
		// with its own initial value; blkid checks it too.
		crc := lvmCRC(sec[20:])
		sec[16], sec[17], sec[18], sec[19] = byte(crc), byte(crc>>8), byte(crc>>16), byte(crc>>24)
		if err := os.WriteFile(p, img, 0o600); err != nil {
			t.Fatal(err)
		}
	})
}

// lvmCRC is LVM2's calc_crc: CRC-32 (reflected polynomial 0xEDB88320)
// started from 0xf597a6cf and not inverted at the end.
func lvmCRC(b []byte) uint32 {
	crc := uint32(0xf597a6cf)
	for _, c := range b {
		crc ^= uint32(c)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xEDB88320
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}

// placed is a file-system image to copy into a disk at a sector.
type placed struct {
	image       string
	startSector int64
}

// buildDisk makes a sparse disk of size bytes, partitions it with the
// sfdisk script, and copies each image to its partition.
func buildDisk(t testing.TB, path string, size int64, script string, parts ...placed) {
	t.Helper()
	tools := testenv.RequireTool(t, "sfdisk")
	truncate(t, path, size)
	run(t, script, tools[0], "--quiet", "--no-reread", "--no-tell-kernel", path)
	out, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	for _, p := range parts {
		copySparse(t, out, p.image, p.startSector*512)
	}
}

// copySparse writes the non-zero 64 KiB pieces of the file src into dst
// at off, keeping dst sparse.
func copySparse(t testing.TB, dst *os.File, src string, off int64) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	buf := make([]byte, 64<<10)
	for pos := int64(0); ; pos += int64(len(buf)) {
		n, err := io.ReadFull(in, buf)
		if n > 0 && !block.IsZero(buf[:n]) {
			if _, werr := dst.WriteAt(buf[:n], off+pos); werr != nil {
				t.Fatal(werr)
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// inspectFile runs Inspect on a whole file.
func inspectFile(t testing.TB, path string) *inspect.Layout {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	l, err := inspect.Inspect(f, fi.Size())
	if err != nil {
		t.Fatalf("Inspect %s: %v", path, err)
	}
	return l
}
