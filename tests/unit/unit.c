/* SPDX-License-Identifier: MIT */
/* Shared helpers of the memory/ unit tests (see unit.h). */
#include "unit.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- fake device ------------------------------------------------------ */

static void testdev_log(TestDev *d, bool write, uint64_t addr, uint64_t data, unsigned size)
{
    if (d->ncalls < TESTDEV_LOG) {
        d->log[d->ncalls] =
            (TestDevCall){ .write = write, .addr = addr, .data = data, .size = size };
    }
    d->ncalls++;
}

const MemoryRegionOps plain_ops = {
    .read = testdev_read,
    .write = testdev_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
};

uint64_t testdev_read(void *opaque, uint64_t addr, unsigned size)
{
    TestDev *d = opaque;
    uint64_t v = 0;

    d->nreads++;
    if (d->memlike) {
        for (unsigned i = 0; i < size && i < 8; i++) {
            v |= (uint64_t)d->mem[(addr + i) % TESTDEV_MEM] << (8 * i);
        }
    } else {
        v = d->read_value;
    }
    testdev_log(d, false, addr, v, size);
    return v;
}

void testdev_write(void *opaque, uint64_t addr, uint64_t data, unsigned size)
{
    TestDev *d = opaque;

    d->nwrites++;
    testdev_log(d, true, addr, data, size);
    if (d->memlike) {
        for (unsigned i = 0; i < size && i < 8; i++) {
            d->mem[(addr + i) % TESTDEV_MEM] = (uint8_t)(data >> (8 * i));
        }
    }
}

void testdev_reset_log(TestDev *d)
{
    d->nreads = d->nwrites = d->ncalls = 0;
    memset(d->log, 0, sizeof(d->log));
}

const MemoryRegionOps testdev_ops = {
    .read = testdev_read,
    .write = testdev_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = { .min_access_size = 1, .max_access_size = 8, .unaligned = true },
    .impl = { .min_access_size = 1, .max_access_size = 8, .unaligned = true },
};

/* ---- fixture ---------------------------------------------------------- */

int fix_setup(void **state)
{
    Fix *f = calloc(1, sizeof(*f));

    if (!f) {
        return -1;
    }
    f->ctx = memory_context_new();
    if (!f->ctx) {
        free(f);
        return -1;
    }
    f->root = fx_container(f, "system", UINT64_MAX);
    f->as = fx_as(f, f->root, "memory");
    *state = f;
    return 0;
}

int fix_teardown(void **state)
{
    Fix *f = *state;
    int rc = 0;

    for (unsigned i = f->nas; i-- > 0;) {
        if (f->ases[i]) {
            address_space_destroy(f->ases[i]);
        }
    }
    /* Unmap everything first, then destroy newest first (aliases are always
     * created after their targets). */
    for (unsigned i = f->nregs; i-- > 0;) {
        MemoryRegion *mr = f->regs[i];
        MemoryRegion *c = mr ? memory_region_get_container(mr) : NULL;
        if (c && memory_region_del_subregion(c, mr) != 0) {
            fprintf(stderr, "teardown: del_subregion(%s, %s) failed: %s\n", memory_region_name(c),
                    memory_region_name(mr), memory_context_last_error(f->ctx));
            rc = -1;
        }
    }
    for (unsigned i = f->nregs; i-- > 0;) {
        MemoryRegion *mr = f->regs[i];
        if (!mr) {
            continue;
        }
        if (f->live[i]) {
            int r = memory_region_destroy(mr);
            if (r != 0) {
                fprintf(stderr, "teardown: destroy(%s) = %d: %s\n", memory_region_name(mr), r,
                        memory_context_last_error(f->ctx));
                rc = -1;
                continue; /* leak rather than free live memory */
            }
        }
        free(mr);
    }
    memory_context_free(f->ctx);
    free(f);
    return rc;
}

static MemoryRegion *fx_track(Fix *f, MemoryRegion *mr)
{
    assert_true(f->nregs < FIX_MAX_REGIONS);
    f->regs[f->nregs++] = mr;
    return mr;
}

void fx_live(Fix *f, MemoryRegion *mr)
{
    for (unsigned i = 0; i < f->nregs; i++) {
        if (f->regs[i] == mr) {
            f->live[i] = true;
            return;
        }
    }
    fail_msg("fx_live: region not tracked");
}

MemoryRegion *fx_slot(Fix *f)
{
    MemoryRegion *mr = calloc(1, sizeof(*mr));
    assert_non_null(mr);
    return fx_track(f, mr);
}

#define FX_INIT(call) \
    do { \
        int r_ = (call); \
        if (r_ != 0) { \
            fail_msg("%s = %d: %s", #call, r_, memory_context_last_error(f->ctx)); \
        } \
        fx_live(f, mr); \
    } while (0)

MemoryRegion *fx_container(Fix *f, const char *name, uint64_t size)
{
    MemoryRegion *mr = fx_slot(f);
    FX_INIT(memory_region_init(mr, f->ctx, name, size));
    return mr;
}

MemoryRegion *fx_ram(Fix *f, const char *name, uint64_t size)
{
    MemoryRegion *mr = fx_slot(f);
    FX_INIT(memory_region_init_ram(mr, f->ctx, "test", name, size));
    return mr;
}

MemoryRegion *fx_rom(Fix *f, const char *name, uint64_t size)
{
    MemoryRegion *mr = fx_slot(f);
    FX_INIT(memory_region_init_rom(mr, f->ctx, "test", name, size));
    return mr;
}

MemoryRegion *fx_io(Fix *f, const MemoryRegionOps *ops, void *opaque, const char *name,
                    uint64_t size)
{
    MemoryRegion *mr = fx_slot(f);
    FX_INIT(memory_region_init_io(mr, f->ctx, ops, opaque, name, size));
    return mr;
}

MemoryRegion *fx_alias(Fix *f, const char *name, MemoryRegion *orig, uint64_t offset, uint64_t size)
{
    MemoryRegion *mr = fx_slot(f);
    FX_INIT(memory_region_init_alias(mr, f->ctx, name, orig, offset, size));
    return mr;
}

MemoryRegion *fx_romdev(Fix *f, const MemoryRegionOps *ops, void *opaque, const char *name,
                        uint64_t size)
{
    MemoryRegion *mr = fx_slot(f);
    FX_INIT(memory_region_init_rom_device(mr, f->ctx, ops, opaque, "test", name, size));
    return mr;
}

void fx_forget(Fix *f, MemoryRegion *mr)
{
    for (unsigned i = 0; i < f->nregs; i++) {
        if (f->regs[i] == mr) {
            f->regs[i] = NULL;
            f->live[i] = false;
            free(mr);
            return;
        }
    }
    fail_msg("fx_forget: region not tracked");
}

AddressSpace *fx_as(Fix *f, MemoryRegion *root, const char *name)
{
    AddressSpace *as = address_space_new(f->ctx, root, name);
    assert_non_null(as);
    assert_true(f->nas < FIX_MAX_AS);
    f->ases[f->nas++] = as;
    return as;
}

void fx_as_destroy(Fix *f, AddressSpace *as)
{
    for (unsigned i = 0; i < f->nas; i++) {
        if (f->ases[i] == as) {
            f->ases[i] = NULL;
            address_space_destroy(as);
            return;
        }
    }
    fail_msg("fx_as_destroy: address space not tracked");
}

/* ---- flat-view assertions -------------------------------------------- */

static void print_size(char *buf, size_t n, Int128 s)
{
    if (s == INT128_2_64) {
        snprintf(buf, n, "2^64");
    } else {
        snprintf(buf, n, "0x%" PRIx64, (uint64_t)s);
    }
}

void dump_flatview(AddressSpace *as)
{
    FlatView *fv = address_space_get_flatview(as);
    size_t n = flatview_nr_ranges(fv);

    print_message("FlatView of %s (%zu ranges):\n", address_space_name(as), n);
    for (size_t i = 0; i < n; i++) {
        const FlatRange *fr = flatview_range(fv, i);
        char sz[32];
        print_size(sz, sizeof(sz), fr->size);
        print_message("  [%zu] start 0x%" PRIx64 " size %s mr %s off 0x%" PRIx64
                      " ro %d romd %d log 0x%x\n",
                      i, fr->start, sz, fr->mr ? memory_region_name(fr->mr) : "(null)",
                      fr->offset_in_region, fr->readonly, fr->romd_mode, fr->dirty_log_mask);
    }
    flatview_unref(fv);
}

size_t fv_count(AddressSpace *as)
{
    FlatView *fv = address_space_get_flatview(as);
    size_t n = flatview_nr_ranges(fv);
    flatview_unref(fv);
    return n;
}

void expect_flatview(AddressSpace *as, const ExpRange *exp, size_t n)
{
    FlatView *fv = address_space_get_flatview(as);
    size_t got = flatview_nr_ranges(fv);
    bool ok = got == n;

    for (size_t i = 0; ok && i < n; i++) {
        const FlatRange *fr = flatview_range(fv, i);
        ok = fr->start == exp[i].start && fr->size == exp[i].size && fr->mr == exp[i].mr &&
             fr->offset_in_region == exp[i].offset;
    }
    flatview_unref(fv);
    if (!ok) {
        print_message("expected %zu ranges:\n", n);
        for (size_t i = 0; i < n; i++) {
            char sz[32];
            print_size(sz, sizeof(sz), exp[i].size);
            print_message("  [%zu] start 0x%" PRIx64 " size %s mr %s off 0x%" PRIx64 "\n", i,
                          exp[i].start, sz, exp[i].mr ? memory_region_name(exp[i].mr) : "(null)",
                          exp[i].offset);
        }
        dump_flatview(as);
        fail_msg("FlatView of %s differs from the expected one", address_space_name(as));
    }
}

/* ---- dispatch helpers ------------------------------------------------- */

MemTxResult as_rd(AddressSpace *as, uint64_t addr, unsigned size, uint64_t *val)
{
    uint8_t b[8] = { 0 };
    MemTxResult r = address_space_read(as, addr, b, size);
    uint64_t v = 0;

    for (unsigned i = 0; i < size && i < 8; i++) {
        v |= (uint64_t)b[i] << (8 * i);
    }
    *val = v;
    return r;
}

MemTxResult as_wr(AddressSpace *as, uint64_t addr, unsigned size, uint64_t val)
{
    uint8_t b[8];

    for (unsigned i = 0; i < 8; i++) {
        b[i] = (uint8_t)(val >> (8 * i));
    }
    return address_space_write(as, addr, b, size);
}

uint64_t rd_ok(AddressSpace *as, uint64_t addr, unsigned size)
{
    uint64_t v;
    MemTxResult r = as_rd(as, addr, size, &v);
    if (r != MEMTX_OK) {
        fail_msg("read of %u bytes at 0x%" PRIx64 " returned %d", size, addr, (int)r);
    }
    return v;
}

void wr_ok(AddressSpace *as, uint64_t addr, unsigned size, uint64_t val)
{
    MemTxResult r = as_wr(as, addr, size, val);
    if (r != MEMTX_OK) {
        fail_msg("write of %u bytes at 0x%" PRIx64 " returned %d", size, addr, (int)r);
    }
}

/* ---- recording listener ---------------------------------------------- */

static RecEvent *rec_push(Rec *r, enum RecKind k, MemoryRegionSection *s)
{
    static RecEvent spare;
    RecEvent *e;

    r->n[k]++;
    if (r->nev >= REC_MAX_EVENTS) {
        memset(&spare, 0, sizeof(spare));
        return &spare;
    }
    e = &r->ev[r->nev++];
    memset(e, 0, sizeof(*e));
    e->kind = k;
    if (s) {
        e->mr = s->mr;
        e->as = s->as;
        e->start = s->offset_within_address_space;
        e->size = s->size;
        e->offset = s->offset_within_region;
        e->readonly = s->readonly;
        e->romd = s->romd_mode;
    }
    return e;
}

static void rec_in_txn(Rec *r)
{
    if (r->depth != 1) {
        r->outside++;
    }
}

static void rec_begin(MemoryListener *l)
{
    Rec *r = (Rec *)l;
    if (r->depth != 0) {
        r->unbalanced++;
    }
    r->depth++;
    rec_push(r, EV_BEGIN, NULL);
}

static void rec_commit(MemoryListener *l)
{
    Rec *r = (Rec *)l;
    if (r->depth != 1) {
        r->unbalanced++;
    }
    r->depth--;
    rec_push(r, EV_COMMIT, NULL);
}

static void rec_add(MemoryListener *l, MemoryRegionSection *s)
{
    Rec *r = (Rec *)l;
    rec_in_txn(r);
    rec_push(r, EV_ADD, s);
}

static void rec_del(MemoryListener *l, MemoryRegionSection *s)
{
    Rec *r = (Rec *)l;
    rec_in_txn(r);
    rec_push(r, EV_DEL, s);
}

static void rec_nop(MemoryListener *l, MemoryRegionSection *s)
{
    Rec *r = (Rec *)l;
    rec_in_txn(r);
    rec_push(r, EV_NOP, s);
}

static void rec_log_start(MemoryListener *l, MemoryRegionSection *s, int o, int n)
{
    Rec *r = (Rec *)l;
    RecEvent *e;
    rec_in_txn(r);
    e = rec_push(r, EV_LOG_START, s);
    e->old_mask = o;
    e->new_mask = n;
}

static void rec_log_stop(MemoryListener *l, MemoryRegionSection *s, int o, int n)
{
    Rec *r = (Rec *)l;
    RecEvent *e;
    rec_in_txn(r);
    e = rec_push(r, EV_LOG_STOP, s);
    e->old_mask = o;
    e->new_mask = n;
}

static void rec_log_sync(MemoryListener *l, MemoryRegionSection *s)
{
    Rec *r = (Rec *)l;
    rec_push(r, EV_LOG_SYNC, s);
    if (r->on_log_sync) {
        r->on_log_sync(r, s);
    }
}

static void rec_eventfd(Rec *r, enum RecKind k, MemoryRegionSection *s, bool m, uint64_t data,
                        int fd)
{
    RecEvent *e = rec_push(r, k, s);
    e->match_data = m;
    e->data = data;
    e->fd = fd;
}

static void rec_eventfd_add(MemoryListener *l, MemoryRegionSection *s, bool m, uint64_t data,
                            int fd)
{
    rec_eventfd((Rec *)l, EV_EVENTFD_ADD, s, m, data, fd);
}

static void rec_eventfd_del(MemoryListener *l, MemoryRegionSection *s, bool m, uint64_t data,
                            int fd)
{
    rec_eventfd((Rec *)l, EV_EVENTFD_DEL, s, m, data, fd);
}

static void rec_coalesced_add(MemoryListener *l, MemoryRegionSection *s, uint64_t addr,
                              uint64_t len)
{
    RecEvent *e = rec_push((Rec *)l, EV_COALESCED_ADD, s);
    e->addr = addr;
    e->len = len;
}

static void rec_coalesced_del(MemoryListener *l, MemoryRegionSection *s, uint64_t addr,
                              uint64_t len)
{
    RecEvent *e = rec_push((Rec *)l, EV_COALESCED_DEL, s);
    e->addr = addr;
    e->len = len;
}

void rec_init(Rec *r)
{
    memset(r, 0, sizeof(*r));
    r->l.begin = rec_begin;
    r->l.commit = rec_commit;
    r->l.region_add = rec_add;
    r->l.region_del = rec_del;
    r->l.region_nop = rec_nop;
    r->l.log_start = rec_log_start;
    r->l.log_stop = rec_log_stop;
    r->l.log_sync = rec_log_sync;
    r->l.eventfd_add = rec_eventfd_add;
    r->l.eventfd_del = rec_eventfd_del;
    r->l.coalesced_add = rec_coalesced_add;
    r->l.coalesced_del = rec_coalesced_del;
}

void rec_reset(Rec *r)
{
    memset(r->n, 0, sizeof(r->n));
    r->nev = 0;
    r->outside = 0;
    r->unbalanced = 0;
}

unsigned rec_count_mr(const Rec *r, enum RecKind k, const MemoryRegion *mr)
{
    unsigned c = 0;
    for (unsigned i = 0; i < r->nev; i++) {
        if (r->ev[i].kind == k && r->ev[i].mr == mr) {
            c++;
        }
    }
    return c;
}

void rec_dump(const Rec *r)
{
    static const char *const names[EV__COUNT] = {
        "begin",    "commit",   "region_add",  "region_del",  "region_nop",    "log_start",
        "log_stop", "log_sync", "eventfd_add", "eventfd_del", "coalesced_add", "coalesced_del",
    };
    print_message("listener events (%u):\n", r->nev);
    for (unsigned i = 0; i < r->nev; i++) {
        const RecEvent *e = &r->ev[i];
        char sz[32];
        print_size(sz, sizeof(sz), e->size);
        print_message("  %-13s %s start 0x%" PRIx64 " size %s off 0x%" PRIx64
                      " masks %d->%d addr 0x%" PRIx64 " len 0x%" PRIx64 "\n",
                      names[e->kind], e->mr ? memory_region_name(e->mr) : "-", e->start, sz,
                      e->offset, e->old_mask, e->new_mask, e->addr, e->len);
    }
}

bool contains(const char *haystack, const char *needle)
{
    return haystack && needle && strstr(haystack, needle) != NULL;
}
