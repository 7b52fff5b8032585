#!/usr/bin/env python3
"""Writes the seed corpora of the virtio fuzz targets (corpus-vq/, corpus-mmio/,
corpus-blk/, corpus-net/).

Run from tests/virtio: python3 make_corpus.py.  See fuzz_vq.c, fuzz_mmio.c,
fuzz_blk.c and fuzz_net.c for the input formats."""
import os
import struct

BUFS = 0x100000
NEXT, WRITE, INDIRECT = 1, 2, 4
F_INDIRECT, F_EVENT_IDX, F_REKICK = 1, 2, 4


def desc_table(descs):
    t = b"".join(struct.pack("<QIHH", a, l, f, n) for a, l, f, n in descs)
    return t.ljust(256, b"\0")


def avail(heads, used_event=0, flags=0):
    r = struct.pack("<HH", flags, len(heads)) + b"".join(struct.pack("<H", h) for h in heads)
    return r.ljust(36, b"\0") + struct.pack("<H", used_event)


def blk_req(t, sector, datalen, write, ctl=0):
    d = [(BUFS, 16, NEXT, 1)]
    if datalen:
        d.append((BUFS + 0x1000, datalen, NEXT | (0 if write else WRITE), 2))
        d.append((BUFS + 0x800, 1, WRITE, 0))
    else:
        d.append((BUFS + 0x800, 1, WRITE, 0))
    area = struct.pack("<IIQ", t, 0, sector).ljust(0x1000 + datalen, b"\xab")
    return bytes([ctl]) + desc_table(d) + avail([0]) + area


TABLE = 0x3000  # indirect tables at BUFS + TABLE (inside the input's area)


def blk_ind(t, sector, datalen, write, direct_hdr=False, ctl=F_INDIRECT, table=None, tlen=None):
    """A blk request through an indirect table (the header direct or not)."""
    if table is None:
        table = []
        if not direct_hdr:
            table.append((BUFS, 16, NEXT, len(table) + 1))
        if datalen:
            table.append((BUFS + 0x1000, datalen, NEXT | (0 if write else WRITE), len(table) + 1))
        table.append((BUFS + 0x800, 1, WRITE, 0))
    raw = b"".join(struct.pack("<QIHH", a, l, f, n) for a, l, f, n in table)
    tlen = len(raw) if tlen is None else tlen
    if direct_hdr:
        d = [(BUFS, 16, NEXT, 1), (BUFS + TABLE, tlen, INDIRECT, 0)]
    else:
        d = [(BUFS + TABLE, tlen, INDIRECT, 0)]
    area = bytearray(struct.pack("<IIQ", t, 0, sector).ljust(TABLE + len(raw), b"\xab"))
    area[TABLE:TABLE + len(raw)] = raw
    return bytes([ctl]) + desc_table(d) + avail([0]) + bytes(area)


def vq():
    return {
        "read": blk_req(0, 1, 512, False),
        "write": blk_req(1, 2, 1024, True),
        "flush": blk_req(4, 0, 0, False),
        "getid": blk_req(8, 0, 20, False),
        "unsupp": blk_req(77, 0, 0, False),
        "loop": b"\0" + desc_table([(BUFS, 16, NEXT, 1), (BUFS + 16, 16, NEXT, 0)]) + avail([0]),
        "two": b"\0" + desc_table([(BUFS, 16, NEXT, 1), (BUFS + 0x800, 1, WRITE, 0),
                                   (BUFS, 16, NEXT, 3), (BUFS + 0x801, 1, WRITE, 0)])
               + avail([0, 2]) + struct.pack("<IIQ", 4, 0, 0),
        "ind-read": blk_ind(0, 1, 512, False),
        "ind-write": blk_ind(1, 2, 1024, True),
        "ind-after-direct": blk_ind(0, 3, 512, False, direct_hdr=True),
        "ind-not-negotiated": blk_ind(0, 1, 512, False, ctl=0),
        "ind-nested": blk_ind(0, 0, 0, False, table=[(BUFS, 16, NEXT, 1),
                                                    (BUFS + TABLE, 32, INDIRECT, 0)]),
        "ind-loop": blk_ind(0, 0, 0, False, table=[(BUFS, 16, NEXT, 1), (BUFS + 0x800, 1,
                                                                         WRITE | NEXT, 0)]),
        "ind-next-past": blk_ind(0, 0, 0, False, table=[(BUFS, 16, NEXT, 5)]),
        "ind-len-24": blk_ind(4, 0, 0, False, tlen=24),
        "ind-len-0": blk_ind(4, 0, 0, False, tlen=0),
        "ind-too-long": blk_ind(4, 0, 0, False, tlen=16 * 257),
        "ind-with-next": bytes([F_INDIRECT]) + desc_table([(BUFS + TABLE, 32, INDIRECT | NEXT, 1),
                                                          (BUFS + 0x800, 1, WRITE, 0)])
                         + avail([0]),
        "evidx-read": blk_req(0, 1, 512, False, ctl=F_EVENT_IDX | F_REKICK),
        "evidx-two": bytes([F_EVENT_IDX | F_INDIRECT]) + desc_table(
            [(BUFS, 16, NEXT, 1), (BUFS + 0x800, 1, WRITE, 0),
             (BUFS, 16, NEXT, 3), (BUFS + 0x801, 1, WRITE, 0)]) + avail([0, 2], used_event=1, flags=1)
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
        # the device has 4 queues: set up 1 and 3 (not 0, 2), program and
        # kick indexes past them, notify each
        "queues": b"".join([rec(1, 0x70, 1), rec(1, 0x70, 3), rec(1, 0x24, 1), rec(1, 0x20, 1),
                            rec(1, 0x70, 0xb)] +
                           [rec(1, 0x30, q) + rec(0, 0x34, 0) + rec(1, 0x38, 16) +
                            rec(1, 0x80, 0x10000 + q * 0x4000) +
                            rec(1, 0x90, 0x11000 + q * 0x4000) +
                            rec(1, 0xa0, 0x12000 + q * 0x4000) + rec(1, 0x44, 1) + rec(0, 0x44, 0)
                            for q in (1, 3, 4, 16, 0xffff)] +
                           [rec(1, 0x70, 0xf)] +
                           [rec(1, 0x50, q) for q in (0, 1, 2, 3, 4, 15, 16, 0xffffffff)]),
    }


def blk():
    """8-byte requests: type, sector, len code, layout, fill pattern."""
    IN, OUT, FLUSH, GETID, UNK = range(5)
    KICK, SPLIT, SHARED, WRONG = 16, 4, 8, 32

    def r(t, sector, sectors, layout=0, extra=0, fill=b"\x11\x22\x33\x44", q=0):
        return bytes([t | q << 4, sector, sectors | extra << 4, layout]) + fill

    return {
        "write-read": r(OUT, 3, 2, KICK | 1) + r(IN, 3, 2, KICK | 2 | SPLIT),
        "batch": b"".join(r(OUT, i * 4, 4, SHARED) for i in range(6)) + r(IN, 0, 8, KICK),
        "errors": r(IN, 63, 2, KICK) + r(OUT, 70, 1, KICK) + r(IN, 0, 1, KICK, extra=3) +
                  r(UNK, 0, 0, KICK) + r(IN, 0, 0, KICK | 0x40) + r(OUT, 0, 1, KICK | 0x80),
        "flush-id": r(FLUSH, 0, 0, KICK) + r(GETID, 0, 1, KICK) + r(GETID, 0, 0, KICK, extra=5),
        "wrong-way": r(OUT, 0, 1, KICK) + r(IN, 1, 2, KICK | WRONG | 1),
        # one batch over the four queues, then each queue on its own
        "queues": b"".join(r(OUT, 8 * q, 2, 0, q=q) for q in range(4)) +
                  b"".join(r(IN, 8 * q, 2, KICK, q=q) for q in range(4)),
        "queue-wrong-way": r(OUT, 0, 1, 0, q=1) + r(IN, 1, 2, KICK | WRONG | 1, q=3),
    }


def net():
    """4-byte operations: TX (bit 0) or RX."""
    def tx(length, ndesc=1):
        return bytes([1, length & 0xff, (length >> 8) & 0xff,
                      ((length >> 16) & 63) | (ndesc - 1) << 6])

    def rx(n, buf300, ndesc=1):
        return bytes([(ndesc - 1) << 1, n & 0xff, n >> 8, buf300])

    return {
        "tx": tx(60) + tx(1514, 3) + tx(12) + tx(11) + tx(0) + tx(12 + 65550, 4) +
              tx(12 + 65551),
        "rx": rx(60, 1) + rx(1514, 6, 4) + rx(5, 1) + rx(100, 1) + rx(2000, 2) +
              rx(65535, 255, 2),
        "mixed": b"".join(tx(64 + i) + rx(64 + i, 1, i % 4 + 1) for i in range(8)),
    }


for name, seeds in (("corpus-vq", vq()), ("corpus-mmio", mmio()), ("corpus-blk", blk()),
                    ("corpus-net", net())):
    os.makedirs(name, exist_ok=True)
    for k, v in seeds.items():
        with open(os.path.join(name, k), "wb") as f:
            f.write(v)
