#!/usr/bin/env python3
"""Write Snapshot 4n6ir Imager folders for the snap4n6ir tests.

The folders are made the way the original script (v0.1.7 to v0.3.1) made
them, with the same libraries:

  SNAP/              block files {index:010d}_{SNAP}_{sha256hex}_{VolumeSizeGiB}_{BlockSize}
  SNAP_compressed/   gzip.open(NAME + '.gz', 'wb') of each block file
  SNAP_encrypted/    Fernet(key).encrypt() of each *compressed* file,
                     named NAME + '.gz' + '.encrypted'

with key = urlsafe_b64encode(PBKDF2HMAC(SHA256, length=32, salt=salt.encode(),
iterations=100000).derive(password.encode())).

Block contents are deterministic; gzip headers (mtime) and Fernet tokens
(timestamp, IV) are not, so rerunning changes the files but not
vectors.json's hashes. To keep the committed data small, the plain folder
holds only the blocks marked "plain" in vectors.json; the compressed and
encrypted folders hold all of them.

Run from anywhere: python3 make_vectors.py
Needs: the `cryptography` package.
"""

import base64
import gzip
import hashlib
import json
import os
import shutil

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

HERE = os.path.dirname(os.path.abspath(__file__))
SNAPSHOT = 'snap-0a1b2c3d4e5f60718'
VOLUME_GIB = 1
BLOCK_SIZE = 524288  # EBS direct APIs serve 512 KiB blocks
PASSWORD = 'Snapshot 4n6ir test password'
SALT = 'test-salt-4n6ir'
PLAIN = {5}  # indexes also kept uncompressed in SNAP/


def pseudo_random(label, n):
    """n bytes of SHA-256 in counter mode: looks random, is reproducible."""
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(label + counter.to_bytes(8, 'big')).digest()
        counter += 1
    return bytes(out[:n])


def text_block():
    lines = []
    size = 0
    i = 0
    while size < BLOCK_SIZE:
        line = 'Mar  8 12:%02d:%02d ip-10-0-0-12 sshd[%d]: Accepted publickey for ec2-user\n' % (
            (i // 60) % 60, i % 60, 1000 + i % 997)
        lines.append(line)
        size += len(line)
        i += 1
    return ''.join(lines).encode()[:BLOCK_SIZE]


def mixed_block():
    # 8 KiB that do not compress, then a repeating structure.
    head = pseudo_random(b'mixed', 8192)
    body = bytes(range(256)) * ((BLOCK_SIZE - len(head)) // 256)
    return head + body


def tail_block():
    # 4080 + 16 bytes: one 4 KiB page, repeated.
    return (b'\xff' * 4080 + b'END OF VOLUME 16') * (BLOCK_SIZE // 4096)


BLOCKS = {
    0: text_block(),
    1: bytes(BLOCK_SIZE),  # listed, but all zeros
    5: mixed_block(),
    2047: tail_block(),  # last slot of a 1 GiB volume
}


def block_name(index, data):
    return '%010d_%s_%s_%d_%d' % (index, SNAPSHOT, hashlib.sha256(data).hexdigest(), VOLUME_GIB, BLOCK_SIZE)


def create_key(password, salt):
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt.encode(), iterations=100000)
    return base64.urlsafe_b64encode(kdf.derive(password.encode()))


def main():
    plain = os.path.join(HERE, SNAPSHOT)
    compressed = plain + '_compressed'
    encrypted = plain + '_encrypted'
    for d in (plain, compressed, encrypted):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)

    key = create_key(PASSWORD, SALT)
    fernet = Fernet(key)
    vectors = []
    for index, data in sorted(BLOCKS.items()):
        assert len(data) == BLOCK_SIZE, (index, len(data))
        name = block_name(index, data)
        if index in PLAIN:
            with open(os.path.join(plain, name), 'wb') as w:
                w.write(data)
        # The original compressed with gzip.open(..., 'wb'): level 9, the
        # file name in the header, the current time as mtime.
        gz_path = os.path.join(compressed, name + '.gz')
        with gzip.open(gz_path, 'wb') as w:
            w.write(data)
        with open(gz_path, 'rb') as r:
            token = fernet.encrypt(r.read())
        with open(os.path.join(encrypted, name + '.gz.encrypted'), 'wb') as w:
            w.write(token)
        vectors.append({
            'index': index,
            'name': name,
            'sha256': hashlib.sha256(data).hexdigest(),
            'plain': index in PLAIN,
        })

    with open(os.path.join(HERE, 'vectors.json'), 'w') as w:
        json.dump({
            'snapshot': SNAPSHOT,
            'volume_gib': VOLUME_GIB,
            'block_size': BLOCK_SIZE,
            'password': PASSWORD,
            'salt': SALT,
            'fernet_key': key.decode(),
            'folders': {
                'plain': SNAPSHOT,
                'compressed': SNAPSHOT + '_compressed',
                'encrypted': SNAPSHOT + '_encrypted',
            },
            'blocks': vectors,
        }, w, indent=2)
        w.write('\n')


if __name__ == '__main__':
    main()
