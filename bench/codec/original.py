#!/usr/bin/env python3
"""Time the original tool's per-block storage on a disk image.

Snapshot 4n6ir Imager gzipped each 512 KiB block file with Python's
gzip (level 9 by default) and then, with --encrypt, wrapped each gzipped
file in a Fernet token. This measures both on the non-zero blocks of the
image run.sh built (the blocks a snapshot would list), at levels 6 and 9,
on one core, and prints the same figures as BenchmarkStore.

usage: original.py DISK_IMAGE
"""

import gzip
import sys
import time

from cryptography.fernet import Fernet

BLOCK = 524288  # EBS direct APIs serve 512 KiB blocks
ZERO = bytes(BLOCK)


def main(path):
    with open(path, 'rb') as f:
        raw = f.read()
    blocks = [raw[i:i + BLOCK] for i in range(0, len(raw) - BLOCK + 1, BLOCK)]
    blocks = [b for b in blocks if b != ZERO]
    total = len(blocks) * BLOCK
    fernet = Fernet(Fernet.generate_key())
    for level in (6, 9):
        start = time.perf_counter()
        stored = [gzip.compress(b, compresslevel=level) for b in blocks]
        gz_s = time.perf_counter() - start
        start = time.perf_counter()
        tokens = [fernet.encrypt(s) for s in stored]
        fer_s = time.perf_counter() - start
        gz_n = sum(len(s) for s in stored)
        tok_n = sum(len(t) for t in tokens)
        print('python gzip%d/ext4       %8.2f MB/s  ratio %.3f  %9.0f B/block' % (
            level, total / gz_s / 1e6, total / gz_n, gz_n / len(blocks)))
        print('python gzip%d+fernet/ext4 %8.2f MB/s  ratio %.3f  %9.0f B/block' % (
            level, total / (gz_s + fer_s) / 1e6, total / tok_n, tok_n / len(blocks)))
    print('(%d non-zero blocks)' % len(blocks))


if __name__ == '__main__':
    main(sys.argv[1])
