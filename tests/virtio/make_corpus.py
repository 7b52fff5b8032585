#!/usr/bin/env python3
"""Writes the seed corpora of the virtio fuzz targets (corpus-vq/, corpus-mmio/).

Run from tests/virtio: python3 make_corpus.py.  See fuzz_vq.c and fuzz_mmio.c
for the input formats."""
import os
import struct

BUFS = 0x100000
NEXT, WRITE = 1, 2


def desc_table(descs):
    t = b"".join(struct.pack("<QIHH", a, l, f, n) for a, l, f, n in descs)
    return t.ljust(256, b"\0")


def avail(heads):
    r = struct.pack("<HH", 0, len(heads)) + b"".join(struct.pack("<H", h) for h in heads)
    return r.ljust(36, b"\0")


def blk_req(t, sector, datalen, write):
    d = [(BUFS, 16, NEXT, 1)]
    if datalen:
        d.append((BUFS + 0x1000, datalen, NEXT | (0 if write else WRITE), 2))
        d.append((BUFS + 0x800, 1, WRITE, 0))
    else:
        d.append((BUFS + 0x800, 1, WRITE, 0))
    area = struct.pack("<IIQ", t, 0, sector).ljust(0x1000 + datalen, b"\xab")
    return desc_table(d) + avail([0]) + area


def vq():
    return {
        "read": blk_req(0, 1, 512, False),
        "write": blk_req(1, 2, 1024, True),
        "flush": blk_req(4, 0, 0, False),
        "getid": blk_req(8, 0, 20, False),
        "unsupp": blk_req(77, 0, 0, False),
        "loop": desc_table([(BUFS, 16, NEXT, 1), (BUFS + 16, 16, NEXT, 0)]) + avail([0]),
        "two": desc_table([(BUFS, 16, NEXT, 1), (BUFS + 0x800, 1, WRITE, 0),
                           (BUFS, 16, NEXT, 3), (BUFS + 0x801, 1, WRITE, 0)]) + avail([0, 2])
               + struct.pack("<IIQ", 4, 0, 0),
    }


def rec(op, off, val):
    return struct.pack("<BHI", op, off, val)


def mmio():
    regs = [0, 4, 8, 0xc, 0x10, 0x34, 0x44, 0x60, 0x70, 0xb0, 0xfc, 0x100, 0x104]
    read_all = b"".join(rec(0, r, 0) for r in regs)
    manual = b"".join([
        rec(1, 0x70, 1), rec(1, 0x70, 3), rec(1, 0x24, 1), rec(1, 0x20, 1), rec(1, 0x70, 0xb),
        rec(1, 0x30, 0), rec(1, 0x38, 16), rec(1, 0x80, 0x10000), rec(1, 0x90, 0x11000),
        rec(1, 0xa0, 0x12000), rec(1, 0x44, 1), rec(1, 0x70, 0xf), rec(1, 0x50, 0),
        rec(0, 0x60, 0), rec(1, 0x64, 3), rec(0, 0x70, 0),
    ])
    return {
        "read-all": read_all,
        "bringup": rec(0xff, 0, 0xffffffff) + read_all + rec(1, 0x50, 0),
        "manual": manual,
        "config-bytes": b"".join(rec(2 | (s << 2), 0x100 + o, 0) for s in range(3)
                                 for o in range(0, 64, 3)),
    }


for name, seeds in (("corpus-vq", vq()), ("corpus-mmio", mmio())):
    os.makedirs(name, exist_ok=True)
    for k, v in seeds.items():
        with open(os.path.join(name, k), "wb") as f:
            f.write(v)
