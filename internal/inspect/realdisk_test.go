package inspect_test

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/inspect"
	"github.com/ebsimager/ebsimager/internal/testenv"
)

// mmlsPart is one row of mmls output.
type mmlsPart struct {
	slot               string
	start, end, length int64
	desc               string
}

var mmlsLine = regexp.MustCompile(`^\d+:\s+(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(.*)$`)

func mmls(t testing.TB, path string) []mmlsPart {
	t.Helper()
	tools := testenv.RequireTool(t, "mmls")
	var rows []mmlsPart
	for _, line := range strings.Split(run(t, "", tools[0], path), "\n") {
		m := mmlsLine.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		a, _ := strconv.ParseInt(m[2], 10, 64)
		b, _ := strconv.ParseInt(m[3], 10, 64)
		c, _ := strconv.ParseInt(m[4], 10, 64)
		rows = append(rows, mmlsPart{slot: m[1], start: a, end: b, length: c, desc: m[5]})
	}
	return rows
}

// fsCheck compares what Inspect found in one file system with the Sleuth
// Kit's fsstat, util-linux's blkid and the file system's own tools.
func fsCheck(t *testing.T, path string, offset, size int64, fs *inspect.FileSystem, wantType string, source string) {
	t.Helper()
	if fs == nil {
		t.Fatalf("no file system found at offset %d", offset)
	}
	if fs.Type != wantType {
		t.Fatalf("file system at offset %d is %q, want %q", offset, fs.Type, wantType)
	}

	// blkid: type, label, UUID (or serial) for every kind.
	b := blkid(t, path, offset, size)
	blkType := map[string]string{
		inspect.TypeFAT12: "vfat", inspect.TypeFAT16: "vfat", inspect.TypeFAT32: "vfat",
		inspect.TypeLUKS1: "crypto_LUKS", inspect.TypeLUKS2: "crypto_LUKS", inspect.TypeLVM2: "LVM2_member",
	}[fs.Type]
	if blkType == "" {
		blkType = fs.Type
	}
	if b["TYPE"] != blkType {
		t.Errorf("blkid TYPE %q, want %q for %s", b["TYPE"], blkType, fs.Type)
	}
	if b["LABEL"] != fs.Label {
		t.Errorf("%s label %q, blkid says %q", fs.Type, fs.Label, b["LABEL"])
	}
	id := fs.UUID
	if fs.Serial != "" {
		id = fs.Serial
	}
	if b["UUID"] != id {
		t.Errorf("%s uuid/serial %q, blkid says %q", fs.Type, id, b["UUID"])
	}

	switch fs.Type {
	case inspect.TypeExt2, inspect.TypeExt3, inspect.TypeExt4:
		checkExt(t, path, offset, fs)
	case inspect.TypeNTFS:
		st := fsstat(t, path, offset)
		want := map[string]string{
			"File System Type":            "NTFS",
			"Volume Serial Number":        fs.Serial,
			"Volume Name":                 fs.Label,
			"Version":                     map[string]string{"3.1": "Windows XP"}[fs.NTFS.Version],
			"First Cluster of MFT":        strconv.FormatUint(fs.NTFS.MFTCluster, 10),
			"First Cluster of MFT Mirror": strconv.FormatUint(fs.NTFS.MFTMirrCluster, 10),
			"Size of MFT Entries":         fmt.Sprintf("%d bytes", fs.NTFS.MFTRecordSize),
			"Size of Index Records":       fmt.Sprintf("%d bytes", fs.NTFS.IndexRecordSize),
			"Sector Size":                 strconv.FormatInt(fs.SectorSize, 10),
			"Cluster Size":                strconv.FormatInt(fs.ClusterSize, 10),
			"Total Sector Range":          fmt.Sprintf("0 - %d", fs.NTFS.TotalSectors-1),
		}
		compare(t, "fsstat", st, want)
	case inspect.TypeFAT12, inspect.TypeFAT16, inspect.TypeFAT32:
		st := fsstat(t, path, offset)
		want := map[string]string{
			"File System Type":              strings.ToUpper(fs.Type),
			"OEM Name":                      fs.FAT.OEMName,
			"Volume ID":                     "0x" + strings.ToLower(strings.ReplaceAll(fs.Serial, "-", "")),
			"Volume Label (Boot Sector)":    fs.FAT.BootLabel,
			"Volume Label (Root Directory)": fs.Label,
			"File System Type Label":        fs.FAT.FSTypeLabel,
			"Sector Size":                   strconv.FormatInt(fs.SectorSize, 10),
			"Cluster Size":                  strconv.FormatInt(fs.ClusterSize, 10),
			"Total Range":                   fmt.Sprintf("0 - %d", fs.FAT.TotalSectors-1),
			"Total Cluster Range":           fmt.Sprintf("2 - %d", fs.FAT.Clusters+1),
		}
		compare(t, "fsstat", st, want)
	case inspect.TypeExFAT:
		st := fsstat(t, path, offset)
		want := map[string]string{
			"File System Type":                   "exFAT",
			"Volume Serial Number":               exfatSerial(fs.Serial),
			"Volume Label (from root directory)": fs.Label,
			"File System Revision":               strings.TrimSuffix(fs.ExFAT.Revision, "0"),
			"Number of FATs":                     strconv.Itoa(fs.ExFAT.FATCount),
			"Sector Size":                        strconv.FormatInt(fs.SectorSize, 10),
			"Cluster Size":                       strconv.FormatInt(fs.ClusterSize, 10),
			"Cluster Range":                      fmt.Sprintf("2 - %d", fs.ExFAT.ClusterCount+1),
		}
		compare(t, "fsstat", st, want)
	case inspect.TypeISO9660:
		st := fsstat(t, path, offset)
		compare(t, "fsstat", st, map[string]string{
			"File System Type":  "ISO9660",
			"Volume Name":       fs.Label,
			"Block Size":        strconv.FormatInt(fs.BlockSize, 10),
			"Total Block Range": fmt.Sprintf("0 - %d", fs.ISO9660.Blocks-1),
		})
	case inspect.TypeXFS:
		// The Sleuth Kit 4.11 has no XFS: ask xfs_db about the source image.
		tools := testenv.RequireTool(t, "xfs_db")
		db := assignments(run(t, "", tools[0], "-r", "-c", "sb 0", "-c", "p uuid fname blocksize sectsize dblocks agcount agblocks inodesize", source))
		compare(t, "xfs_db", db, map[string]string{
			"uuid":      fs.UUID,
			"fname":     `"` + fs.Label + strings.Repeat(`\000`, 12-len(fs.Label)) + `"`,
			"blocksize": strconv.FormatInt(fs.BlockSize, 10),
			"sectsize":  strconv.FormatInt(fs.SectorSize, 10),
			"dblocks":   strconv.FormatUint(fs.XFS.BlockCount, 10),
			"agcount":   strconv.FormatUint(uint64(fs.XFS.AGCount), 10),
			"agblocks":  strconv.FormatUint(uint64(fs.XFS.AGBlocks), 10),
			"inodesize": strconv.Itoa(fs.XFS.InodeSize),
		})
	}
}

// exfatSerial writes a serial the way fsstat does for exFAT: each byte,
// most significant first, in %x without padding.
func exfatSerial(s string) string {
	b, _ := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if len(b) != 4 {
		return "bad serial " + s
	}
	return fmt.Sprintf("%x%x-%x%x", b[0], b[1], b[2], b[3])
}

// assignments parses xfs_db's "name = value" lines.
func assignments(out string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, " = "); ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

func fsstat(t testing.TB, path string, offset int64) map[string]string {
	t.Helper()
	tools := testenv.RequireTool(t, "fsstat")
	return fields(run(t, "", tools[0], "-o", strconv.FormatInt(offset/512, 10), path))
}

func compare(t *testing.T, tool string, got, want map[string]string) {
	t.Helper()
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if got[k] != want[k] {
			t.Errorf("%s %q = %q, Inspect says %q", tool, k, got[k], want[k])
		}
	}
}

// checkExt compares the ext superblock facts with fsstat and dumpe2fs.
func checkExt(t *testing.T, path string, offset int64, fs *inspect.FileSystem) {
	t.Helper()
	e := fs.Ext
	st := fsstat(t, path, offset)
	// fsstat prints the UUID as two little-endian 64-bit numbers in %x,
	// the second half first.
	uuid, _ := hex.DecodeString(strings.ReplaceAll(fs.UUID, "-", ""))
	if len(uuid) != 16 {
		t.Fatalf("uuid %q", fs.UUID)
	}
	volumeID := strconv.FormatUint(binary.LittleEndian.Uint64(uuid[8:]), 16) + strconv.FormatUint(binary.LittleEndian.Uint64(uuid[:8]), 16)
	when := func(tm interface{ Format(string) string }, zero bool) string {
		if zero {
			return "empty"
		}
		return tm.Format("2006-01-02 15:04:05") + " (UTC)"
	}
	want := map[string]string{
		"File System Type": map[string]string{"ext2": "Ext2", "ext3": "Ext3", "ext4": "Ext4"}[fs.Type],
		"Volume Name":      fs.Label,
		"Volume ID":        volumeID,
		"Last Written at":  when(e.LastWrite, e.LastWrite.IsZero()),
		"Last Mounted at":  when(e.LastMount, e.LastMount.IsZero()),
		"Last mounted on":  e.LastMountedOn,
		"Block Size":       strconv.FormatInt(fs.BlockSize, 10),
		"Block Range":      fmt.Sprintf("0 - %d", e.BlockCount-1),
		"Inode Range":      fmt.Sprintf("1 - %d", e.InodeCount+1),
		"Free Blocks":      strconv.FormatUint(e.FreeBlocks, 10),
		"Free Inodes":      strconv.FormatUint(uint64(e.FreeInodes), 10),
	}
	if fs.Type == inspect.TypeExt4 { // fsstat prints the inode size for ext4 only
		want["Inode Size"] = strconv.Itoa(e.InodeSize)
	}
	compare(t, "fsstat", st, want)

	tools := testenv.RequireTool(t, "dumpe2fs")
	d := fields(run(t, "", tools[0], "-h", fmt.Sprintf("%s?offset=%d", path, offset)))
	features := slices.Concat(e.FeaturesCompat, e.FeaturesIncompat, e.FeaturesROCompat)
	sort.Strings(features)
	dumpFeatures := strings.Fields(d["Filesystem features"])
	sort.Strings(dumpFeatures)
	d["Filesystem features"] = strings.Join(dumpFeatures, " ")
	stamp := func(tm interface{ Format(string) string }, zero bool) string {
		if zero {
			return "n/a"
		}
		return tm.Format("Mon Jan _2 15:04:05 2006")
	}
	state := e.State
	lastMounted := e.LastMountedOn
	if lastMounted == "" {
		lastMounted = "<not available>"
	}
	compare(t, "dumpe2fs", d, map[string]string{
		"Filesystem volume name": fs.Label,
		"Filesystem UUID":        fs.UUID,
		"Last mounted on":        lastMounted,
		"Filesystem features":    strings.Join(features, " "),
		"Filesystem state":       state,
		"Errors behavior":        strings.Replace(strings.ToUpper(e.ErrorBehavior[:1])+e.ErrorBehavior[1:], "-ro", " read-only", 1),
		"Filesystem OS type":     e.CreatorOS,
		"Block count":            strconv.FormatUint(e.BlockCount, 10),
		"Reserved block count":   strconv.FormatUint(e.ReservedBlocks, 10),
		"Free blocks":            strconv.FormatUint(e.FreeBlocks, 10),
		"Inode count":            strconv.FormatUint(uint64(e.InodeCount), 10),
		"Free inodes":            strconv.FormatUint(uint64(e.FreeInodes), 10),
		"Block size":             strconv.FormatInt(fs.BlockSize, 10),
		"Inode size":             strconv.Itoa(e.InodeSize),
		"Blocks per group":       strconv.FormatUint(uint64(e.BlocksPerGroup), 10),
		"Inodes per group":       strconv.FormatUint(uint64(e.InodesPerGroup), 10),
		"Mount count":            strconv.Itoa(e.MountCount),
		"Maximum mount count":    strconv.Itoa(e.MaxMountCount),
		"Filesystem created":     stamp(e.Created, e.Created.IsZero()),
		"Last mount time":        stamp(e.LastMount, e.LastMount.IsZero()),
		"Last write time":        stamp(e.LastWrite, e.LastWrite.IsZero()),
		"Filesystem revision #":  strings.Replace(e.Revision, ".0", " (dynamic)", 1),
	})
}

// TestGPTDisk builds a GPT disk holding ext4, NTFS, XFS and FAT32 made by
// their own mkfs and checks every partition and file system against
// sfdisk, mmls, fsstat, blkid, dumpe2fs and xfs_db.
func TestGPTDisk(t *testing.T) {
	ext4, ntfs, xfs, fat32 := extImage(t, "ext4"), ntfsImage(t), xfsImage(t), fatImage(t, 32)
	disk := filepath.Join(t.TempDir(), "gpt.raw")
	script := `label: gpt
label-id: 7E57D15C-0000-4000-8000-000000000001
start=2048, size=65536, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=7E57D15C-0001-4000-8000-000000000001, name="root"
start=67584, size=65536, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, uuid=7E57D15C-0002-4000-8000-000000000002, name="windows data", attrs="GUID:60,63"
start=133120, size=614400, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=7E57D15C-0003-4000-8000-000000000003, name="xfs home", attrs="RequiredPartition LegacyBIOSBootable"
start=747520, size=81920, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=7E57D15C-0004-4000-8000-000000000004, name="EFI System Partition"
`
	buildDisk(t, disk, 448<<20, script,
		placed{ext4, 2048}, placed{ntfs, 67584}, placed{xfs, 133120}, placed{fat32, 747520})

	l := inspectFile(t, disk)
	if l.Table != inspect.TableGPT || l.GPT == nil || l.GPT.Header != "primary" || !l.GPT.PrimaryValid || !l.GPT.BackupValid {
		t.Fatalf("table %q gpt %+v, want a GPT with both headers valid", l.Table, l.GPT)
	}
	if len(l.Warnings) != 0 {
		t.Errorf("warnings: %q", l.Warnings)
	}
	checkGPTAgainstSfdisk(t, disk, l)

	// mmls lists each GPT entry by slot (index from 0) with its name.
	var got []mmlsPart
	for _, r := range mmls(t, disk) {
		if _, err := strconv.Atoi(r.slot); err == nil {
			got = append(got, r)
		}
	}
	if len(got) != len(l.Partitions) {
		t.Fatalf("mmls lists %d partitions, Inspect %d", len(got), len(l.Partitions))
	}
	for i, p := range l.Partitions {
		want := mmlsPart{slot: fmt.Sprintf("%03d", p.Number-1), start: p.StartSector, end: p.EndSector, length: p.Sectors, desc: p.Name}
		if got[i] != want {
			t.Errorf("partition %d: mmls %+v, Inspect %+v", p.Number, got[i], want)
		}
		if p.Offset != p.StartSector*512 || p.Length != p.Sectors*512 {
			t.Errorf("partition %d: offset %d length %d do not match its sectors", p.Number, p.Offset, p.Length)
		}
	}

	wantTypes := []string{inspect.TypeExt4, inspect.TypeNTFS, inspect.TypeXFS, inspect.TypeFAT32}
	sources := []string{ext4, ntfs, xfs, fat32}
	for i, p := range l.Partitions {
		t.Run(wantTypes[i], func(t *testing.T) {
			fsCheck(t, disk, p.Offset, p.Length, p.FileSystem, wantTypes[i], sources[i])
		})
	}
	checkFixtureValues(t, l.Partitions[0].FileSystem, l.Partitions[1].FileSystem, l.Partitions[2].FileSystem, l.Partitions[3].FileSystem)
	if got := l.Partitions[1].Flags; !slices.Equal(got, []string{"read_only", "no_drive_letter"}) {
		t.Errorf("partition 2 flags %q", got)
	}
	if got := l.Partitions[2].Flags; !slices.Equal(got, []string{"required", "legacy_bios_bootable"}) {
		t.Errorf("partition 3 flags %q", got)
	}
}

// checkFixtureValues pins the values the fixtures were made with, so a
// parser and a checker that agree on a wrong value still fail.
func checkFixtureValues(t *testing.T, ext4, ntfs, xfs, fat *inspect.FileSystem) {
	t.Helper()
	if ext4.Label != "evext4" || ext4.UUID != ext4UUID || ext4.BlockSize != 1024 && ext4.BlockSize != 4096 ||
		ext4.Ext.LastMountedOn != mountPoint || ext4.Ext.LastMount.Format("20060102150405") != lastMount || ext4.Ext.State != "clean" {
		t.Errorf("ext4 = %+v %+v", ext4, ext4.Ext)
	}
	if ntfs.Label != "EVNTFS" || ntfs.ClusterSize != 4096 || ntfs.SectorSize != 512 || ntfs.NTFS.Version != "3.1" || len(ntfs.Serial) != 16 {
		t.Errorf("ntfs = %+v %+v", ntfs, ntfs.NTFS)
	}
	if xfs.Label != "EVXFS" || xfs.UUID != xfsUUID || xfs.BlockSize != 4096 || xfs.XFS.Version != 5 {
		t.Errorf("xfs = %+v %+v", xfs, xfs.XFS)
	}
	if fat.Type == inspect.TypeFAT32 && (fat.Label != "EVFAT32" || fat.Serial != "1234-ABCD" || fat.ClusterSize != 512) {
		t.Errorf("fat32 = %+v %+v", fat, fat.FAT)
	}
	if fat.Type == inspect.TypeFAT16 && (fat.Label != "EVFAT16" || fat.Serial != "2345-BCDE") {
		t.Errorf("fat16 = %+v %+v", fat, fat.FAT)
	}
}

// checkGPTAgainstSfdisk compares GUIDs, names and attributes with
// sfdisk --json, which reads the same table with libfdisk.
func checkGPTAgainstSfdisk(t *testing.T, disk string, l *inspect.Layout) {
	t.Helper()
	tools := testenv.RequireTool(t, "sfdisk")
	var dump struct {
		PartitionTable struct {
			ID         string `json:"id"`
			FirstLBA   int64  `json:"firstlba"`
			LastLBA    int64  `json:"lastlba"`
			Partitions []struct {
				Start int64  `json:"start"`
				Size  int64  `json:"size"`
				Type  string `json:"type"`
				UUID  string `json:"uuid"`
				Name  string `json:"name"`
				Attrs string `json:"attrs"`
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal([]byte(run(t, "", tools[0], "--json", disk)), &dump); err != nil {
		t.Fatal(err)
	}
	pt := dump.PartitionTable
	if strings.ToLower(pt.ID) != l.DiskID || pt.FirstLBA != l.GPT.FirstUsableLBA || pt.LastLBA != l.GPT.LastUsableLBA {
		t.Errorf("sfdisk id %s lbas %d-%d; Inspect %s %d-%d", pt.ID, pt.FirstLBA, pt.LastLBA, l.DiskID, l.GPT.FirstUsableLBA, l.GPT.LastUsableLBA)
	}
	if len(pt.Partitions) != len(l.Partitions) {
		t.Fatalf("sfdisk lists %d partitions, Inspect %d", len(pt.Partitions), len(l.Partitions))
	}
	for i, sp := range pt.Partitions {
		p := l.Partitions[i]
		var attrs uint64
		for _, a := range strings.Fields(sp.Attrs) {
			switch {
			case a == "RequiredPartition":
				attrs |= 1 << 0
			case a == "NoBlockIOProtocol":
				attrs |= 1 << 1
			case a == "LegacyBIOSBootable":
				attrs |= 1 << 2
			case strings.HasPrefix(a, "GUID:"):
				for _, bit := range strings.Split(strings.TrimPrefix(a, "GUID:"), ",") {
					n, _ := strconv.Atoi(bit)
					attrs |= 1 << n
				}
			}
		}
		wantAttrs := ""
		if attrs != 0 {
			wantAttrs = fmt.Sprintf("0x%016x", attrs)
		}
		if sp.Start != p.StartSector || sp.Size != p.Sectors || strings.ToLower(sp.Type) != p.Type ||
			strings.ToLower(sp.UUID) != p.GUID || sp.Name != p.Name || wantAttrs != p.Attributes {
			t.Errorf("partition %d: sfdisk %+v (attrs %s), Inspect %+v", p.Number, sp, wantAttrs, p)
		}
	}
}

// TestMBRDisk builds an MBR disk with primary, extended and logical
// partitions and checks them against mmls and each file system's tools.
func TestMBRDisk(t *testing.T) {
	ext4, fat32, ntfs, xfs, fat16 := extImage(t, "ext4"), fatImage(t, 32), ntfsImage(t), xfsImage(t), fatImage(t, 16)
	disk := filepath.Join(t.TempDir(), "mbr.raw")
	script := `label: dos
label-id: 0x7e57d15c
start=2048, size=65536, type=83, bootable
start=67584, size=81920, type=c
start=149504, type=5
start=151552, size=65536, type=7
start=219136, size=614400, type=83
start=835584, size=32768, type=e
`
	buildDisk(t, disk, 448<<20, script,
		placed{ext4, 2048}, placed{fat32, 67584}, placed{ntfs, 151552}, placed{xfs, 219136}, placed{fat16, 835584})

	l := inspectFile(t, disk)
	if l.Table != inspect.TableMBR || l.DiskID != "0x7e57d15c" || len(l.Warnings) != 0 {
		t.Fatalf("table %q disk id %q warnings %q", l.Table, l.DiskID, l.Warnings)
	}
	type row struct {
		number             int
		role, typ          string
		start, end, length int64
	}
	var gotRows []row
	for _, p := range l.Partitions {
		gotRows = append(gotRows, row{p.Number, p.Role, p.Type, p.StartSector, p.EndSector, p.Sectors})
	}
	wantRows := []row{
		{1, "primary", "0x83", 2048, 67583, 65536},
		{2, "primary", "0x0c", 67584, 149503, 81920},
		{3, "extended", "0x05", 149504, 917503, 768000},
		{5, "logical", "0x07", 151552, 217087, 65536},
		{6, "logical", "0x83", 219136, 833535, 614400},
		{7, "logical", "0x0e", 835584, 868351, 32768},
	}
	if !slices.Equal(gotRows, wantRows) {
		t.Errorf("partitions\n got %+v\nwant %+v", gotRows, wantRows)
	}
	if !slices.Equal(l.Partitions[0].Flags, []string{"bootable"}) || l.Partitions[1].Flags != nil {
		t.Errorf("flags %q %q, want bootable on partition 1 only", l.Partitions[0].Flags, l.Partitions[1].Flags)
	}

	// mmls: "Meta" rows hold the tables and the extended partitions;
	// numbered rows ("000:001") the data partitions, with the type byte in
	// parentheses.
	var data, extended []string
	for _, r := range mmls(t, disk) {
		typ := r.desc[strings.LastIndex(r.desc, "(")+1 : len(r.desc)-1]
		entry := fmt.Sprintf("%d-%d/%d %s", r.start, r.end, r.length, typ)
		switch {
		case strings.Contains(r.slot, ":"):
			data = append(data, entry)
		case r.slot == "Meta" && strings.Contains(r.desc, "Extended (0x"):
			extended = append(extended, entry)
		}
	}
	var mine, mineExt []string
	for _, p := range l.Partitions {
		entry := fmt.Sprintf("%d-%d/%d %s", p.StartSector, p.EndSector, p.Sectors, p.Type)
		if p.Role == "extended" {
			mineExt = append(mineExt, entry)
		} else {
			mine = append(mine, entry)
		}
	}
	if !slices.Equal(data, mine) {
		t.Errorf("data partitions: mmls %q, Inspect %q", data, mine)
	}
	if len(extended) == 0 || len(mineExt) != 1 || extended[0] != mineExt[0] {
		t.Errorf("extended partition: mmls %q, Inspect %q", extended, mineExt)
	}

	wantTypes := map[int]string{1: inspect.TypeExt4, 2: inspect.TypeFAT32, 5: inspect.TypeNTFS, 6: inspect.TypeXFS, 7: inspect.TypeFAT16}
	sources := map[int]string{1: ext4, 2: fat32, 5: ntfs, 6: xfs, 7: fat16}
	for _, p := range l.Partitions {
		if p.Role == "extended" {
			if p.FileSystem != nil {
				t.Errorf("extended partition probed as %q", p.FileSystem.Type)
			}
			continue
		}
		t.Run(fmt.Sprintf("%d-%s", p.Number, wantTypes[p.Number]), func(t *testing.T) {
			fsCheck(t, disk, p.Offset, p.Length, p.FileSystem, wantTypes[p.Number], sources[p.Number])
		})
	}
	byNum := map[int]*inspect.FileSystem{}
	for _, p := range l.Partitions {
		byNum[p.Number] = p.FileSystem
	}
	checkFixtureValues(t, byNum[1], byNum[5], byNum[6], byNum[2])
	checkFixtureValues(t, byNum[1], byNum[5], byNum[6], byNum[7])
}

// TestBareFileSystems inspects images with no partition table: every kind
// Inspect knows, each made by its own tool.
func TestBareFileSystems(t *testing.T) {
	cases := []struct {
		typ   string
		image func(testing.TB) string
		label string
		uuid  string // or serial; "" when the tool picks it at random
	}{
		{inspect.TypeExt2, func(t testing.TB) string { return extImage(t, "ext2") }, "evext2", ext2UUID},
		{inspect.TypeExt3, func(t testing.TB) string { return extImage(t, "ext3") }, "evext3", ext3UUID},
		{inspect.TypeExt4, func(t testing.TB) string { return extImage(t, "ext4") }, "evext4", ext4UUID},
		{inspect.TypeNTFS, ntfsImage, "EVNTFS", ""},
		{inspect.TypeXFS, xfsImage, "EVXFS", xfsUUID},
		{inspect.TypeFAT12, func(t testing.TB) string { return fatImage(t, 12) }, "EVFAT12", "3456-CDEF"},
		{inspect.TypeFAT16, func(t testing.TB) string { return fatImage(t, 16) }, "EVFAT16", "2345-BCDE"},
		{inspect.TypeFAT32, func(t testing.TB) string { return fatImage(t, 32) }, "EVFAT32", "1234-ABCD"},
		{inspect.TypeExFAT, exfatImage, "EVEXFAT", ""},
		{inspect.TypeBtrfs, btrfsImage, "evbtrfs", btrfsUUID},
		{inspect.TypeSwap, swapImage, "evswap", swapUUID},
		{inspect.TypeLUKS1, func(t testing.TB) string { return luksImage(t, 1) }, "", luks1UUID},
		{inspect.TypeLUKS2, func(t testing.TB) string { return luksImage(t, 2) }, "evluks", luks2UUID},
		{inspect.TypeISO9660, isoImage, "EVISO", ""},
		{inspect.TypeLVM2, lvmImage, "", "AbCdEf-0123-4567-89Gh-IjKl-MnOp-QrStUv"},
	}
	for _, c := range cases {
		t.Run(c.typ, func(t *testing.T) {
			img := c.image(t)
			l := inspectFile(t, img)
			if l.Table != inspect.TableNone || len(l.Partitions) != 0 {
				t.Fatalf("table %q with %d partitions, want none", l.Table, len(l.Partitions))
			}
			fs := l.FileSystem
			fsCheck(t, img, 0, 0, fs, c.typ, img)
			id := fs.UUID
			if fs.Serial != "" {
				id = fs.Serial
			}
			if fs.Label != c.label || (c.uuid != "" && id != c.uuid) {
				t.Errorf("label %q id %q, want %q %q", fs.Label, id, c.label, c.uuid)
			}
			if len(fs.Warnings) != 0 {
				t.Errorf("warnings %q", fs.Warnings)
			}
		})
	}
}
