#!/usr/bin/env python3
"""Extract the uncompressed vmlinux ELF from an x86 bzImage whose payload is LZ4.

Usage: extract-vmlinux.py BZIMAGE OUT_VMLINUX

The boot protocol header (Documentation/x86/boot.rst) says where the
compressed payload sits: setup_sects at 0x1f1, payload_offset (0x248) and
payload_length (0x24c) relative to the start of the protected-mode code.
The kernel's build appends the uncompressed size (le32) after an LZ4
"legacy" stream (magic 02 21 4c 18).  If the header fields do not point at
that magic, the file is scanned for it instead.  Decompression is done by
the `lz4` program (Debian package lz4).  The result must be an ELF file.
"""
import struct
import subprocess
import sys

LZ4_LEGACY_MAGIC = b"\x02\x21\x4c\x18"


def fail(msg):
    sys.stderr.write("extract-vmlinux: " + msg + "\n")
    sys.exit(1)


def payload(img, path):
    if len(img) < 0x250 or img[0x202:0x206] != b"HdrS":
        fail("%s: not a bzImage (no HdrS boot header)" % path)
    setup_sects = img[0x1f1] or 4
    pm_start = (setup_sects + 1) * 512
    off, length = struct.unpack_from("<II", img, 0x248)
    start = pm_start + off
    if length > 8 and start + length <= len(img) and img[start:start + 4] == LZ4_LEGACY_MAGIC:
        # drop the 4-byte uncompressed size the kernel build appends
        return img[start:start + length - 4]
    pos = img.find(LZ4_LEGACY_MAGIC)
    if pos < 0:
        fail("%s: no LZ4 legacy stream found (payload is not LZ4?)" % path)
    return img[pos:]


def main():
    if len(sys.argv) != 3:
        fail("usage: extract-vmlinux.py BZIMAGE OUT_VMLINUX")
    src, dst = sys.argv[1], sys.argv[2]
    try:
        with open(src, "rb") as f:
            img = f.read()
    except OSError as e:
        fail("%s: %s" % (src, e.strerror))
    data = payload(img, src)
    # lz4 stops at the end of the legacy stream; trailing bytes make it warn
    # but the output is complete, so judge the result by its ELF header.
    proc = subprocess.run(["lz4", "-d", "-c"], input=data,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = proc.stdout
    if out[:4] != b"\x7fELF":
        fail("%s: lz4 did not yield an ELF (lz4 said: %s)" %
             (src, proc.stderr.decode(errors="replace").strip()))
    with open(dst, "wb") as f:
        f.write(out)


if __name__ == "__main__":
    main()
