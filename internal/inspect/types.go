package inspect

import "fmt"

const gptMicrosoftBasicData = "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7"

// gptTypes names well-known GPT partition type GUIDs with the names that
// util-linux's sfdisk --list-types prints (a test checks them against it).
var gptTypes = map[string]string{
	"c12a7328-f81f-11d2-ba4b-00a0c93ec93b": "EFI System",
	"024dee41-33e7-11d3-9d69-0008c781f39f": "MBR partition scheme",
	"21686148-6449-6e6f-744e-656564454649": "BIOS boot",
	"d3bfe2de-3daf-11df-ba40-e3a556d89593": "Intel Fast Flash",
	"f4019732-066e-4e12-8273-346c5641494f": "Sony boot partition",
	"bfbfafe7-a34f-448a-9a5b-6213eb736c22": "Lenovo boot partition",
	"e3c9e316-0b5c-4db8-817d-f92df00215ae": "Microsoft reserved",
	gptMicrosoftBasicData:                  "Microsoft basic data",
	"5808c8aa-7e8f-42e0-85d2-e1e90434cfb3": "Microsoft LDM metadata",
	"af9b60a0-1431-4f62-bc68-3311714a69ad": "Microsoft LDM data",
	"de94bba4-06d1-4d40-a16a-bfd50179d6ac": "Windows recovery environment",
	"e75caf8f-f680-4cee-afa3-b001e56efc2d": "Microsoft Storage Spaces",
	"0fc63daf-8483-4772-8e79-3d69d8477de4": "Linux filesystem",
	"0657fd6d-a4ab-43c4-84e5-0933c84b4f4f": "Linux swap",
	"e6d6d379-f507-44c2-a23c-238f2a3df928": "Linux LVM",
	"a19d880f-05fc-4d3b-a006-743f0f84911e": "Linux RAID",
	"933ac7e1-2eb4-4f13-b844-0e14e2aef915": "Linux home",
	"3b8f8425-20e0-4f3b-907f-1a25a76f98e8": "Linux server data",
	"8da63339-0007-60c0-c436-083ac8230908": "Linux reserved",
	"bc13c2ff-59e6-4262-a352-b275fd6f7172": "Linux extended boot",
	"4d21b016-b534-45c2-a9fb-5c16e091fd2d": "Linux variable data",
	"7ec6f557-3bc5-4aca-b293-16ef5df639d1": "Linux temporary data",
	"44479540-f297-41b2-9af7-d131d5f0458a": "Linux root (x86)",
	"4f68bce3-e8cd-4db1-96e7-fbcaf984b709": "Linux root (x86-64)",
	"69dad710-2ce4-4e3c-b16c-21a1d49abed3": "Linux root (ARM)",
	"b921b045-1df0-41c3-af44-4c6f280d3fae": "Linux root (ARM-64)",
	"d13c5d3b-b5d1-422a-b29f-9454fdc89d76": "Linux root verity (x86)",
	"2c7357ed-ebd2-46d9-aec1-23d437ec2bf5": "Linux root verity (x86-64)",
	"df3300ce-d69f-4c92-978c-9bfb0f38d820": "Linux root verity (ARM-64)",
	"8484680c-9521-48c6-9c11-b0720656f69e": "Linux /usr (x86-64)",
	"b0e01050-ee5f-4390-949a-9101b17104e9": "Linux /usr (ARM-64)",
	"516e7cb4-6ecf-11d6-8ff8-00022d09712b": "FreeBSD data",
	"83bd6b9d-7f41-11dc-be0b-001560b84f0f": "FreeBSD boot",
	"516e7cb5-6ecf-11d6-8ff8-00022d09712b": "FreeBSD swap",
	"516e7cb6-6ecf-11d6-8ff8-00022d09712b": "FreeBSD UFS",
	"516e7cba-6ecf-11d6-8ff8-00022d09712b": "FreeBSD ZFS",
	"48465300-0000-11aa-aa11-00306543ecac": "Apple HFS/HFS+",
	"7c3457ef-0000-11aa-aa11-00306543ecac": "Apple APFS",
	"55465300-0000-11aa-aa11-00306543ecac": "Apple UFS",
	"426f6f74-0000-11aa-aa11-00306543ecac": "Apple boot",
	"6a898cc3-1dd2-11b2-99a6-080020736631": "Solaris /usr & Apple ZFS",
	"fe3a2a5d-4f32-41a7-b725-accc3285a309": "ChromeOS kernel",
	"3cb8e202-3b7e-47dd-8a3c-7ff2a13cfcec": "ChromeOS root fs",
	"2e0a753d-9e48-43b0-8337-b15192cb1b5e": "ChromeOS reserved",
	"6a82cb45-1dd2-11b2-99a6-080020736631": "Solaris boot",
	"6a85cf4d-1dd2-11b2-99a6-080020736631": "Solaris root",
	"c91818f9-8025-47af-89d2-f030d7000c2c": "Plan 9 partition",
	"aa31e02a-400f-11db-9590-000c2911d1b8": "VMware VMFS",
	"9d275380-40ad-11db-bf97-000c2911d1b8": "VMware Diagnostic",
	"9198effc-31c0-11db-8f78-000c2911d1b8": "VMware Reserved",
}

// gptLinuxTypes are the types whose attribute bits 59, 60 and 63 mean
// grow-fs, read-only and no-auto (Discoverable Partitions Specification).
var gptLinuxTypes = map[string]bool{
	"0fc63daf-8483-4772-8e79-3d69d8477de4": true,
	"0657fd6d-a4ab-43c4-84e5-0933c84b4f4f": true,
	"933ac7e1-2eb4-4f13-b844-0e14e2aef915": true,
	"3b8f8425-20e0-4f3b-907f-1a25a76f98e8": true,
	"bc13c2ff-59e6-4262-a352-b275fd6f7172": true,
	"4d21b016-b534-45c2-a9fb-5c16e091fd2d": true,
	"7ec6f557-3bc5-4aca-b293-16ef5df639d1": true,
	"44479540-f297-41b2-9af7-d131d5f0458a": true,
	"4f68bce3-e8cd-4db1-96e7-fbcaf984b709": true,
	"69dad710-2ce4-4e3c-b16c-21a1d49abed3": true,
	"b921b045-1df0-41c3-af44-4c6f280d3fae": true,
	"8484680c-9521-48c6-9c11-b0720656f69e": true,
	"b0e01050-ee5f-4390-949a-9101b17104e9": true,
}

func gptTypeName(guid string) string {
	if n, ok := gptTypes[guid]; ok {
		return n
	}
	return "unknown"
}

// mbrTypes names the common MBR partition type bytes as util-linux's
// sfdisk --list-types prints them (a test checks them against it).
var mbrTypes = map[byte]string{
	0x01: "FAT12",
	0x04: "FAT16 <32M",
	0x05: "Extended",
	0x06: "FAT16",
	0x07: "HPFS/NTFS/exFAT",
	0x0b: "W95 FAT32",
	0x0c: "W95 FAT32 (LBA)",
	0x0e: "W95 FAT16 (LBA)",
	0x0f: "W95 Ext'd (LBA)",
	0x11: "Hidden FAT12",
	0x12: "Compaq diagnostics",
	0x14: "Hidden FAT16 <32M",
	0x16: "Hidden FAT16",
	0x17: "Hidden HPFS/NTFS",
	0x1b: "Hidden W95 FAT32",
	0x1c: "Hidden W95 FAT32 (LBA)",
	0x1e: "Hidden W95 FAT16 (LBA)",
	0x27: "Hidden NTFS WinRE",
	0x42: "SFS",
	0x82: "Linux swap / Solaris",
	0x83: "Linux",
	0x85: "Linux extended",
	0x86: "NTFS volume set",
	0x87: "NTFS volume set",
	0x8e: "Linux LVM",
	0xa5: "FreeBSD",
	0xa6: "OpenBSD",
	0xa8: "Darwin UFS",
	0xa9: "NetBSD",
	0xab: "Darwin boot",
	0xaf: "HFS / HFS+",
	0xbe: "Solaris boot",
	0xbf: "Solaris",
	0xda: "Non-FS data",
	0xde: "Dell Utility",
	0xee: "GPT",
	0xef: "EFI (FAT-12/16/32)",
	0xfb: "VMware VMFS",
	0xfc: "VMware VMKCORE",
	0xfd: "Linux raid autodetect",
}

func mbrTypeName(t byte) string {
	if n, ok := mbrTypes[t]; ok {
		return n
	}
	return fmt.Sprintf("unknown (0x%02x)", t)
}
