#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_memory (tests/fuzz/corpus/).

Each seed is a small program in the byte code that fuzz_memory.c's step()
interprets; this file is the assembler.  Run it again after changing the byte
code: python3 tests/fuzz/make_corpus.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

# kinds (op_create)
CONTAINER, IO, RAM, RAM_PTR, ROM, ROMDEV, ALIAS = range(7)


def u16(v): return struct.pack('<H', v & 0xffff)
def u64(v): return struct.pack('<Q', v & (2**64 - 1))

def size_max(): return bytes([3])                 # 2^64
def size16(v): return bytes([1]) + u16(v - 1)     # 1..65536
def addr16(v): return bytes([0]) + u16(v)
def addr64(v): return bytes([5]) + u64(v)
def addr_top(v): return bytes([2]) + u16(v)       # UINT64_MAX - v


def create(slot, kind, *rest, ops=0, owner=1):
    return bytes([0, slot, kind, ops, owner]) + b''.join(rest)

def container(slot, size): return create(slot, CONTAINER, size)
def io(slot, size, ops=0): return create(slot, IO, bytes([1]), size, ops=ops)
def ram(slot, size): return create(slot, RAM, u16(size))
def ram_ptr(slot, size): return create(slot, RAM_PTR, u16(size))
def rom(slot, size): return create(slot, ROM, u16(size))
def romdev(slot, size, ops=2): return create(slot, ROMDEV, u16(size), ops=ops)
def alias(slot, target, off, size): return create(slot, ALIAS, bytes([target]), off, size)
def destroy(slot): return bytes([2, slot])
def add(c, s, addr): return bytes([3, c, s]) + addr
def add_overlap(c, s, addr, prio): return bytes([5, c, s]) + addr + bytes([prio & 0xff])
def delete(s): return bytes([7, s, 1])            # from its own container
def enable(s, v): return bytes([8, s, v])
def set_address(s, addr): return bytes([9, s]) + addr
def alias_offset(s, addr): return bytes([10, s]) + addr
def readonly(s, v): return bytes([11, s, v])
def romd(s, v): return bytes([12, s, v])
def coalesce_all(s): return bytes([14, s, 0])
def coalesce(s, addr, size): return bytes([14, s, 1]) + addr + size
def eventfd(s, add, match, addr, size, data):
    return bytes([15, s, add, match, 1]) + addr + bytes([size]) + u64(data)
BEGIN, COMMIT = bytes([16]), bytes([17])
def set_log(s, on, client): return bytes([18, s, client]) + addr16(0) + size16(1) + bytes([0, on])
def get_dirty(s, client, addr, size): return bytes([18, s, client]) + addr + size + bytes([1])
def set_dirty(s, addr, size): return bytes([18, s, 0]) + addr + size + bytes([2])
def reset_dirty(s, client, addr, size): return bytes([18, s, client]) + addr + size + bytes([3])
def read(a, addr, k): return bytes([19, a]) + addr + bytes([1, k])        # 1 << k bytes
def read_buf(a, addr, n): return bytes([19, a]) + addr + bytes([0]) + u16(n)
def write(a, addr, data):
    k = {1: 0, 2: 1, 4: 2, 8: 3}[len(data)]
    return bytes([20, a]) + addr + bytes([1, k]) + data
def dispatch_read(s, addr, size): return bytes([21, s, size]) + addr + bytes([1])
def mtree(flags): return bytes([22, 1, flags])
MTREE_JSON = bytes([22, 0])
def new_as(a, root): return bytes([23, a, root])
def del_as(a): return bytes([23, a, 0])
def listen(i, a): return bytes([24, i, a])
def flatview(a): return bytes([25, a]) + addr16(0) + addr16(0) + bytes([8])


SEEDS = {
    'basic-tree': [
        container(0, size_max()), new_as(0, 0), listen(0, 0),
        io(1, size16(0x1000)), add(0, 1, addr16(0x1000)),
        ram(2, 0x2000), add_overlap(0, 2, addr16(0x1800), 1),
        write(0, addr16(0x1800), b'\x11\x22\x33\x44'), read(0, addr16(0x17fe), 2),
        read_buf(0, addr16(0x0ff0), 64), mtree(0), mtree(1), MTREE_JSON, flatview(0),
    ],
    'alias-transactions': [
        container(0, size_max()), new_as(0, 0), listen(0, 0),
        container(1, size16(0x8000)), ram(2, 0x4000), add(1, 2, addr16(0x1000)),
        alias(3, 1, addr16(0x800), size16(0x2000)), alias(4, 3, addr16(0x100), size16(0x1000)),
        BEGIN, add_overlap(0, 3, addr16(0x10000), 2), add_overlap(0, 4, addr16(0x10800), 3),
        readonly(3, 1), BEGIN, alias_offset(3, addr16(0x1000)), enable(2, 0), COMMIT,
        set_address(3, addr16(0x20000)), COMMIT,
        write(0, addr16(0x20100), b'\x01' * 8), read(0, addr16(0x10900), 3),
        enable(2, 1), delete(4), destroy(4), mtree(3),
    ],
    'rom-romd': [
        container(0, size16(0x10000)), new_as(1, 0), listen(1, 1),
        rom(1, 0x1000), add(0, 1, addr16(0)), romdev(2, 0x1000),
        add_overlap(0, 2, addr16(0x800), -1), romd(2, 0),
        read(1, addr16(0xffc), 2), write(1, addr16(0x900), b'\xaa\xbb'), romd(2, 1),
        read_buf(1, addr16(0x7f0), 40), dispatch_read(2, addr16(4), 4),
    ],
    'dirty-log': [
        container(0, size_max()), new_as(0, 0), ram_ptr(1, 0x3000), add(0, 1, addr16(0x4000)),
        set_log(1, 1, 3), set_log(1, 1, 0), write(0, addr16(0x5004), b'\x01\x02\x03\x04'),
        get_dirty(1, 3, addr16(0x1000), size16(0x1000)), set_dirty(1, addr16(0x2000), size16(8)),
        reset_dirty(1, 3, addr16(0), size16(0x3000)), set_log(1, 0, 3), listen(0, 0),
    ],
    'eventfd-coalesce': [
        container(0, size16(0x10000)), new_as(0, 0), listen(0, 0), io(1, size16(0x100), ops=2),
        add(0, 1, addr16(0x400)), eventfd(1, 1, 0, addr16(0x10), 4, 0),
        eventfd(1, 1, 1, addr16(0x20), 2, 0x1234), coalesce_all(1),
        write(0, addr16(0x410), b'\x05\x00\x00\x00'), write(0, addr16(0x420), b'\x34\x12'),
        coalesce(1, addr16(0x40), size16(0x10)), eventfd(1, 0, 0, addr16(0x10), 4, 0),
        set_address(1, addr16(0x800)), delete(1),
    ],
    'top-of-2-64': [
        container(0, size_max()), new_as(0, 0), listen(0, 0),
        io(1, size_max(), ops=2), add_overlap(0, 1, addr16(0), -1),
        ram(2, 0x1000), add(0, 2, addr_top(0xfff)),
        read(0, addr_top(7), 3), read(0, addr_top(3), 2), write(0, addr_top(0x1003), b'\x09' * 8),
        container(3, size_max()), alias(4, 0, addr16(0), size_max()), add(3, 4, addr16(0)),
        new_as(1, 3), listen(1, 1), read_buf(1, addr_top(0x1f), 32), mtree(3),
    ],
    # was a hang (split loop wrapping past 2^64), fixed in memory/ 4f97ce4
    'io-split-wraps-at-2-64-hang': [
        container(0, size_max()), io(1, size_max(), ops=0), add(0, 1, addr16(0)),
        new_as(0, 0), read(0, addr_top(2), 1),
    ],
}


# Inputs that expose bugs found in memory/ (see README.md); not in the corpus,
# so that the corpus stays a passing regression test.
KNOWN_BUGS = {
    # address_space_get_flatview() is NULL for an AS made inside a transaction
    'as-new-in-transaction-null-flatview': [
        container(0, size_max()), BEGIN, new_as(0, 0), flatview(0),
    ],
    # destroying an AS inside a transaction drops the pending update of
    # another AS on the same root: check_flatviews fails after the commit
    'as-destroy-drops-pending-update': [
        container(0, size16(0x10000)), io(1, size16(0x100)), add(0, 1, addr16(0x400)),
        new_as(0, 0), BEGIN, new_as(1, 0), set_address(1, addr16(0x100)), del_as(1), COMMIT,
    ],
    # a region that is a FlatView's (shared) root can be destroyed inside a
    # transaction; info mtree -f then reads freed memory
    'destroy-shared-flatview-root-uaf': [
        container(0, size16(0x10000)), ram(1, 0x1000),
        alias(2, 1, addr16(0x100), size16(0x100)), add(0, 2, addr16(0)), new_as(0, 0),
        BEGIN, delete(2), destroy(2), mtree(1),
    ],
}


def write_all(folder, progs):
    out = os.path.join(HERE, folder)
    os.makedirs(out, exist_ok=True)
    for name, prog in progs.items():
        with open(os.path.join(out, name), 'wb') as f:
            f.write(b''.join(prog))


def main():
    write_all('corpus', SEEDS)
    write_all('known-bugs', KNOWN_BUGS)


if __name__ == '__main__':
    main()
