/* SPDX-License-Identifier: MIT */
/*
 * Dispatch half of the randomized test: recording I/O callbacks, random
 * reads/writes through the address spaces, and their expected results
 * computed from the reference map byte by byte.
 */
#include "tests/random/random_memory.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Deterministic "device register" contents of an I/O region. */
static uint8_t pattern(const RNode *n, uint64_t off)
{
    uint64_t x = off * 0x9E3779B97F4A7C15ull ^ ((uint64_t)n->id << 40) ^ 0x5bd1e995u;
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    return (uint8_t)x;
}

static void violation(Model *m, const char *msg, const RNode *n, uint64_t addr, unsigned size)
{
    if (!m->violation[0])
        snprintf(m->violation, sizeof(m->violation), "%s: %s addr 0x%" PRIx64 " size %u", msg,
                 memory_region_name(n->mr), addr, size);
}

/* Validates one callback and returns the region-relative offset. */
static uint64_t op_enter(RNode *n, uint64_t addr, unsigned size, bool write)
{
    Model *m = n->model;
    if (size < 1 || size > 8 || (size & (size - 1)))
        violation(m, "callback got an access size that is not 1/2/4/8", n, addr, size);
    if (addr < n->legacy)
        violation(m, "callback address below the legacy offset", n, addr, size);
    uint64_t off = addr - n->legacy;
    if (n->ops_variant == 1 && (size > 4 || (off & (size - 1))))
        violation(m, "callback (impl max 4, aligned) got a wider or unaligned access", n, addr,
                  size);
    if ((s128)off + size > n->size)
        violation(m, "callback access past the region end", n, addr, size);
    if (m->ncalls < MAX_RECORDS)
        m->calls[m->ncalls++] =
            (CallRec){ .id = n->id, .addr = addr, .size = size, .write = write };
    return off;
}

static uint64_t io_read(void *opaque, uint64_t addr, unsigned size)
{
    RNode *n = opaque;
    Model *m = n->model;
    uint64_t off = op_enter(n, addr, size, false), v = 0;
    for (unsigned i = 0; i < size && i < 8; i++) {
        uint8_t b = pattern(n, off + i);
        v |= (uint64_t)b << (8 * i);
        if (m->nr < MAX_RECORDS)
            m->rbytes[m->nr++] = (ByteRec){ .id = n->id, .off = off + i, .byte = b };
    }
    return v;
}

static void io_write(void *opaque, uint64_t addr, uint64_t data, unsigned size)
{
    RNode *n = opaque;
    Model *m = n->model;
    uint64_t off = op_enter(n, addr, size, true);
    for (unsigned i = 0; i < size && i < 8; i++)
        if (m->nw < MAX_RECORDS)
            m->wbytes[m->nw++] =
                (ByteRec){ .id = n->id, .off = off + i, .byte = (uint8_t)(data >> (8 * i)) };
}

/* Variant 0: any 1..8 byte access, unaligned fine, implemented as is.
 * Variant 1: guest may do anything; callbacks implement 1..4 aligned. */
const MemoryRegionOps random_ops[2] = {
    {
        .read = io_read,
        .write = io_write,
        .endianness = DEVICE_LITTLE_ENDIAN,
        .valid = { .min_access_size = 1, .max_access_size = 8, .unaligned = true },
        .impl = { .min_access_size = 1, .max_access_size = 8, .unaligned = true },
    },
    {
        .read = io_read,
        .write = io_write,
        .endianness = DEVICE_NATIVE_ENDIAN,
        .valid = { .unaligned = true },
        .impl = { .unaligned = false },
    },
};

static int cmp_rec(const void *a, const void *b)
{
    const ByteRec *x = a, *y = b;
    if (x->id != y->id)
        return x->id < y->id ? -1 : 1;
    if (x->off != y->off)
        return x->off < y->off ? -1 : 1;
    return (int)x->byte - (int)y->byte;
}

static void dump_calls(Model *m)
{
    for (size_t i = 0; i < m->ncalls; i++)
        tr(m, "  callback %zu: %s r%d addr 0x%" PRIx64 " size %u", i,
           m->calls[i].write ? "write" : "read", m->calls[i].id, m->calls[i].addr,
           m->calls[i].size);
}

static RNode *node_by_id(Model *m, int id)
{
    for (size_t i = 0; i < m->nnodes; i++)
        if (m->nodes[i]->id == id)
            return m->nodes[i];
    return NULL;
}

/*
 * memory/ serves an unaligned access to a device whose callbacks want
 * aligned units (impl.unaligned = false) by widening each piece to an
 * aligned unit: reads fetch neighbouring bytes, writes read-modify-write
 * them, and a long buffer split into unaligned 8-byte pieces touches the
 * shared unit twice.  QEMU instead splits into smaller aligned accesses of
 * the guest's bytes only.  Unless --strict-io, accept for such devices extra
 * callback bytes in the aligned 4-byte hull of the guest's bytes when they are
 * reads, or writes of exactly what the device holds.  Returns the new count.
 */
static size_t drop_widened(Model *m, ByteRec *got, size_t ngot, const ByteRec *exp, size_t nexp,
                           bool write)
{
    if (m->strict_io)
        return ngot;
    bool matched[MAX_ACCESS] = { false };
    size_t k = 0;
    for (size_t i = 0; i < ngot; i++) {
        bool in_hull = false, hit = false;
        for (size_t j = 0; j < nexp && !hit; j++) {
            if (exp[j].id != got[i].id)
                continue;
            if (!matched[j] && exp[j].off == got[i].off && exp[j].byte == got[i].byte)
                hit = matched[j] = true;
            in_hull = in_hull || (exp[j].off & ~(uint64_t)3) == (got[i].off & ~(uint64_t)3);
        }
        if (!hit) {
            RNode *n = node_by_id(m, got[i].id);
            if (in_hull && n && n->ops_variant == 1 &&
                (!write || got[i].byte == pattern(n, got[i].off))) {
                m->n_widened++;
                continue;
            }
        }
        got[k++] = got[i];
    }
    return k;
}

static void compare_records(Model *m, const char *what, ByteRec *got, size_t ngot, ByteRec *exp,
                            size_t nexp, uint64_t addr, uint64_t len)
{
    size_t ngot0 = ngot;
    ngot = drop_widened(m, got, ngot, exp, nexp, what[0] == 'w');
    bool same = ngot == nexp;
    if (ngot != ngot0)
        tr(m, "(%zu widened callback bytes accepted for %s at 0x%" PRIx64 ")", ngot0 - ngot, what,
           addr);
    qsort(got, ngot, sizeof(*got), cmp_rec);
    qsort(exp, nexp, sizeof(*exp), cmp_rec);
    size_t n = ngot < nexp ? ngot : nexp;
    for (size_t i = 0; i < n; i++)
        same = same && cmp_rec(&got[i], &exp[i]) == 0;
    if (!same)
        dump_calls(m);
    for (size_t i = 0; i < n; i++)
        if (cmp_rec(&got[i], &exp[i]) != 0)
            fail(m,
                 "%s of %" PRIu64 " bytes at 0x%" PRIx64 ": callback byte %zu is r%d+0x%" PRIx64
                 "=%02x, expected r%d+0x%" PRIx64 "=%02x",
                 what, len, addr, i, got[i].id, got[i].off, got[i].byte, exp[i].id, exp[i].off,
                 exp[i].byte);
    if (ngot != nexp)
        fail(m,
             "%s of %" PRIu64 " bytes at 0x%" PRIx64 ": callbacks touched %zu bytes, "
             "expected %zu",
             what, len, addr, ngot, nexp);
}

static void reset_records(Model *m)
{
    m->ncalls = m->nr = m->nw = 0;
    m->violation[0] = 0;
}

/* Where to access: near a random piece boundary of the map, or inside it. */
static uint64_t pick_addr(Model *m, const RMap *map, uint64_t len)
{
    const RSeg *s = &map->segs[rnd_below(m, map->nsegs)];
    s128 base;
    switch (rnd_below(m, 4)) {
    case 0:
        base = s->lo;
        break;
    case 1:
        base = s->hi;
        break;
    case 2:
        base = s->hi - (s128)len;
        break;
    default: {
        s128 span = s->hi - s->lo;
        base = s->lo + (span >= S128_2_64 ? (s128)rnd(m) : (s128)rnd_below(m, (uint64_t)span));
        break;
    }
    }
    base += (s128)rnd_below(m, 19) - 9;
    if (base + (s128)len > S128_2_64)
        base = S128_2_64 - (s128)len;
    if (base < 0)
        base = 0;
    return (uint64_t)base;
}

static bool ram_like(const RNode *t)
{
    return t->kind == RK_RAM || t->kind == RK_RAM_PTR || t->kind == RK_ROM;
}

static uint8_t *host_mem(Model *m, RNode *t)
{
    uint8_t *p = memory_region_get_ram_ptr(t->mr);
    if (!p)
        fail(m, "memory_region_get_ram_ptr(%s) is NULL", memory_region_name(t->mr));
    if (t->kind == RK_RAM_PTR && p != t->ptrbuf)
        fail(m, "memory_region_get_ram_ptr(%s) is not the caller's buffer",
             memory_region_name(t->mr));
    return p;
}

void check_all_ram(Model *m)
{
    for (size_t i = 0; i < m->nnodes; i++) {
        RNode *t = m->nodes[i];
        if (!t->shadow)
            continue;
        uint8_t *p = host_mem(m, t);
        if (memcmp(p, t->shadow, (size_t)t->size) != 0) {
            size_t k = 0;
            while (p[k] == t->shadow[k])
                k++;
            fail(m,
                 "memory of %s differs from what the guest wrote at offset 0x%zx "
                 "(got %02x, expected %02x)",
                 memory_region_name(t->mr), k, p[k], t->shadow[k]);
        }
    }
}

static void do_read(Model *m, AddressSpace *as, const RMap *map, uint64_t addr, uint64_t len)
{
    uint8_t buf[MAX_ACCESS], exp[MAX_ACCESS];
    ByteRec expr[MAX_ACCESS];
    size_t nexp = 0, nun = 0, nmem = 0;
    const RSeg *seg0 = ref_lookup(map, addr);
    bool one_seg = true;

    for (uint64_t i = 0; i < len; i++) {
        const RSeg *s = ref_lookup(map, addr + i);
        one_seg = one_seg && s == seg0;
        const RItem *it = s->it;
        if (!it) {
            exp[i] = 0xff;
            nun++;
            continue;
        }
        RNode *t = it->term;
        uint64_t off = (uint64_t)((s128)(addr + i) - it->origin);
        if (ram_like(t) || (t->kind == RK_ROMDEV && it->romd)) {
            exp[i] = t->shadow[off];
            nmem++;
        } else if (t->kind == RK_IO || t->kind == RK_ROMDEV) {
            exp[i] = pattern(t, off);
            expr[nexp++] = (ByteRec){ .id = t->id, .off = off, .byte = exp[i] };
        } else {
            exp[i] = 0xff; /* I/O region without ops */
        }
    }

    memset(buf, 0xa5, sizeof(buf));
    reset_records(m);
    MemTxResult r = address_space_read(as, addr, buf, len);
    m->n_accesses++;
    if (m->violation[0])
        fail(m, "read of %" PRIu64 " bytes at 0x%" PRIx64 ": %s", len, addr, m->violation);
    for (uint64_t i = 0; i < len; i++) {
        if (buf[i] != exp[i]) {
            const RItem *it = ref_lookup(map, addr + i)->it;
            dump_calls(m);
            fail(m,
                 "read of %" PRIu64 " bytes at 0x%" PRIx64 ": byte %" PRIu64 " (at 0x%" PRIx64
                 ", %s) is %02x, expected %02x",
                 len, addr, i, addr + i, it ? memory_region_name(it->term->mr) : "unassigned",
                 buf[i], exp[i]);
        }
    }
    compare_records(m, "read", m->rbytes, m->nr, expr, nexp, addr, len);
    if (nun == len && r != MEMTX_DECODE_ERROR)
        fail(m,
             "read of %" PRIu64 " unassigned bytes at 0x%" PRIx64 " returned %d, expected "
             "MEMTX_DECODE_ERROR",
             len, addr, (int)r);
    if (nmem == len && r != MEMTX_OK)
        fail(m, "read of %" PRIu64 " memory bytes at 0x%" PRIx64 " returned %d", len, addr, (int)r);

    /* A 1/2/4/8-byte access inside one piece is one callback, unsplit. */
    const RItem *it = seg0->it;
    if (one_seg && it && nexp == len && (len == 1 || len == 2 || len == 4 || len == 8)) {
        RNode *t = it->term;
        uint64_t off = (uint64_t)((s128)addr - it->origin);
        if (t->ops_variant == 0 || (len <= 4 && (off & (len - 1)) == 0)) {
            if (m->ncalls != 1 || m->calls[0].addr != off + t->legacy || m->calls[0].size != len)
                fail(m,
                     "read of %" PRIu64 " bytes at 0x%" PRIx64 " inside %s: expected one "
                     "callback at 0x%" PRIx64 ", got %zu (first at 0x%" PRIx64 " size %u)",
                     len, addr, memory_region_name(t->mr), off + t->legacy, m->ncalls,
                     m->ncalls ? m->calls[0].addr : 0, m->ncalls ? m->calls[0].size : 0);
        }
    }
}

static void do_write(Model *m, AddressSpace *as, const RMap *map, uint64_t addr, uint64_t len)
{
    uint8_t buf[MAX_ACCESS];
    ByteRec expw[MAX_ACCESS];
    size_t nexp = 0, nun = 0, nram = 0;

    for (uint64_t i = 0; i < len; i++)
        buf[i] = (uint8_t)rnd(m);
    for (uint64_t i = 0; i < len; i++) {
        const RItem *it = ref_lookup(map, addr + i)->it;
        if (!it) {
            nun++;
            continue;
        }
        RNode *t = it->term;
        uint64_t off = (uint64_t)((s128)(addr + i) - it->origin);
        if (t->kind == RK_IO || t->kind == RK_ROMDEV) {
            if (it->ro)
                return; /* read-only alias onto a device: not specified */
            expw[nexp++] = (ByteRec){ .id = t->id, .off = off, .byte = buf[i] };
        } else if ((t->kind == RK_RAM || t->kind == RK_RAM_PTR) && !it->ro) {
            nram++;
        }
    }

    reset_records(m);
    MemTxResult r = address_space_write(as, addr, buf, len);
    m->n_accesses++;
    if (m->violation[0])
        fail(m, "write of %" PRIu64 " bytes at 0x%" PRIx64 ": %s", len, addr, m->violation);
    compare_records(m, "write", m->wbytes, m->nw, expw, nexp, addr, len);
    for (uint64_t i = 0; i < len; i++) {
        const RItem *it = ref_lookup(map, addr + i)->it;
        if (it && (it->term->kind == RK_RAM || it->term->kind == RK_RAM_PTR) && !it->ro)
            it->term->shadow[(uint64_t)((s128)(addr + i) - it->origin)] = buf[i];
    }
    if (nun == len && r != MEMTX_DECODE_ERROR)
        fail(m,
             "write of %" PRIu64 " unassigned bytes at 0x%" PRIx64 " returned %d, "
             "expected MEMTX_DECODE_ERROR",
             len, addr, (int)r);
    if (nram == len && r != MEMTX_OK)
        fail(m, "write of %" PRIu64 " RAM bytes at 0x%" PRIx64 " returned %d", len, addr, (int)r);
    /* RAM, read-only RAM and ROM: what landed in memory is what we expect. */
    for (uint64_t i = 0; i < len; i++) {
        const RItem *it = ref_lookup(map, addr + i)->it;
        if (it && ram_like(it->term)) {
            uint64_t off = (uint64_t)((s128)(addr + i) - it->origin);
            uint8_t *p = host_mem(m, it->term);
            if (p[off] != it->term->shadow[off])
                fail(m,
                     "write of %" PRIu64 " bytes at 0x%" PRIx64 ": %s+0x%" PRIx64
                     " holds %02x, expected %02x%s",
                     len, addr, memory_region_name(it->term->mr), off, p[off],
                     it->term->shadow[off], it->ro ? " (read-only: write must be dropped)" : "");
        }
    }
}

void random_accesses(Model *m, unsigned count)
{
    static const uint64_t sizes[4] = { 1, 2, 4, 8 };
    for (unsigned k = 0; k < count; k++) {
        int a = (int)rnd_below(m, 2);
        const RMap *map = &m->map[a];
        uint64_t len = chance(m, 60) ? sizes[rnd_below(m, 4)] : 1 + rnd_below(m, MAX_ACCESS);
        uint64_t addr = pick_addr(m, map, len);
        if (len <= 8 && chance(m, 50))
            addr &= ~(len - 1);
        if (chance(m, 50))
            do_read(m, m->as[a], map, addr, len);
        else
            do_write(m, m->as[a], map, addr, len);
    }
}
