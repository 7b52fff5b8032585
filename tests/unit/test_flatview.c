/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of FlatView rendering: priorities, clipping, 2^64 regions,
 * terminating containers, range merging, lookup, FlatView sharing between
 * address spaces and references, render counts, and
 * memory_context_check_flatviews over a series of changes.
 */
#include "unit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void test_size_2_64(void **state)
{
    Fix *f = *state;
    TestDev dev = { .memlike = true };

    assert_int_equal(memory_region_size(f->root), UINT64_MAX);
    assert_true(memory_region_size128(f->root) == INT128_2_64);

    /* An empty root renders nothing and has no FlatView root. */
    FlatView *fv = address_space_get_flatview(f->as);
    assert_int_equal(flatview_nr_ranges(fv), 0);
    assert_null(flatview_root(fv));
    assert_null(flatview_lookup(fv, 0));
    assert_null(flatview_lookup(fv, UINT64_MAX));
    flatview_unref(fv);

    /* RAM in the very last page. */
    MemoryRegion *top = fx_ram(f, "top", 0x1000);
    assert_int_equal(memory_region_add_subregion(f->root, 0xfffffffffffff000ull, top), 0);
    ExpRange e1[] = { R(0xfffffffffffff000ull, 0x1000, top, 0) };
    expect_flatview(f->as, e1, NR(e1));
    wr_ok(f->as, UINT64_MAX - 7, 8, 0x1122334455667788ull);
    assert_int_equal(rd_ok(f->as, UINT64_MAX - 7, 8), 0x1122334455667788ull);
    uint8_t *p = memory_region_get_ram_ptr(top);
    assert_int_equal(p[0xfff], 0x11);
    assert_int_equal(p[0xff8], 0x88);

    /* A 2^64 I/O background under it (like QEMU's "io" and "pci"). */
    MemoryRegion *bg = fx_io(f, &testdev_ops, &dev, "bg", UINT64_MAX);
    assert_true(memory_region_size128(bg) == INT128_2_64);
    assert_int_equal(memory_region_add_subregion_overlap(f->root, 0, bg, -1), 0);
    ExpRange e2[] = {
        R(0, 0xfffffffffffff000ull, bg, 0),
        R(0xfffffffffffff000ull, 0x1000, top, 0),
    };
    expect_flatview(f->as, e2, NR(e2));

    fv = address_space_get_flatview(f->as);
    const FlatRange *fr = flatview_lookup(fv, UINT64_MAX);
    assert_non_null(fr);
    assert_ptr_equal(fr->mr, top);
    fr = flatview_lookup(fv, 0);
    assert_non_null(fr);
    assert_ptr_equal(fr->mr, bg);
    fr = flatview_lookup(fv, 0xffffffffffffefffull);
    assert_non_null(fr);
    assert_ptr_equal(fr->mr, bg);
    flatview_unref(fv);

    assert_int_equal(memory_context_check_flatviews(f->ctx), 0);
}

/* ---- priorities, enable, move, alias window --------------------------- */

static void test_priorities(void **state)
{
    Fix *f = *state;
    TestDev dev = { 0 };
    MemoryRegion *pci = fx_container(f, "pci", UINT64_MAX);
    MemoryRegion *pcidev = fx_io(f, &plain_ops, &dev, "pcidev", 0x1000);
    MemoryRegion *ram = fx_ram(f, "ram", 0x8000);
    MemoryRegion *vga = fx_io(f, &plain_ops, &dev, "vga", 0x1000);
    MemoryRegion *bg = fx_io(f, &plain_ops, &dev, "bg", 0x10000);

    assert_int_equal(memory_region_add_subregion(pci, 0x9000, pcidev), 0);
    assert_int_equal(memory_region_add_subregion(pci, 0x1000, vga), 0);
    assert_int_equal(memory_region_del_subregion(pci, vga), 0);
    assert_int_equal(memory_region_add_subregion_overlap(f->root, 0, pci, -1), 0);
    assert_int_equal(memory_region_add_subregion(f->root, 0, ram), 0);
    ExpRange e1[] = { R(0, 0x8000, ram, 0), R(0x9000, 0x1000, pcidev, 0) };
    expect_flatview(f->as, e1, NR(e1));

    /* Higher priority splits the RAM. */
    assert_int_equal(memory_region_add_subregion_overlap(f->root, 0x2000, vga, 1), 0);
    /* A lower priority background shows through every hole, including the
     * holes of the (pure container) pci region above it. */
    assert_int_equal(memory_region_add_subregion_overlap(f->root, 0, bg, -5), 0);
    ExpRange e2[] = {
        R(0, 0x2000, ram, 0),          R(0x2000, 0x1000, vga, 0),    R(0x3000, 0x5000, ram, 0x3000),
        R(0x8000, 0x1000, bg, 0x8000), R(0x9000, 0x1000, pcidev, 0), R(0xa000, 0x6000, bg, 0xa000),
    };
    expect_flatview(f->as, e2, NR(e2));
    assert_int_equal(memory_context_check_flatviews(f->ctx), 0);
}

static void test_equal_priority_newest_wins(void **state)
{
    Fix *f = *state;
    MemoryRegion *a = fx_ram(f, "first", 0x1000);
    MemoryRegion *b = fx_ram(f, "second", 0x1000);

    assert_int_equal(memory_region_add_subregion_overlap(f->root, 0x20000, a, 2), 0);
    assert_int_equal(memory_region_add_subregion_overlap(f->root, 0x20800, b, 2), 0);
    ExpRange e1[] = { R(0x20000, 0x800, a, 0), R(0x20800, 0x1000, b, 0) };
    expect_flatview(f->as, e1, NR(e1));

    assert_int_equal(memory_region_del_subregion(f->root, a), 0);
    assert_int_equal(memory_region_add_subregion_overlap(f->root, 0x20000, a, 2), 0);
    ExpRange e2[] = { R(0x20000, 0x1000, a, 0), R(0x21000, 0x800, b, 0x800) };
    expect_flatview(f->as, e2, NR(e2));

    /* Priority beats age. */
    assert_int_equal(memory_region_del_subregion(f->root, b), 0);
    assert_int_equal(memory_region_add_subregion_overlap(f->root, 0x20800, b, 3), 0);
    expect_flatview(f->as, e1, NR(e1));
    /* Negative priorities are below zero, not above. */
    assert_int_equal(memory_region_del_subregion(f->root, b), 0);
    assert_int_equal(memory_region_add_subregion_overlap(f->root, 0x20800, b, -3), 0);
    ExpRange e3[] = { R(0x20000, 0x1000, a, 0), R(0x21000, 0x800, b, 0x800) };
    expect_flatview(f->as, e3, NR(e3));
    assert_int_equal(memory_context_check_flatviews(f->ctx), 0);
}

static void test_alias_of_container(void **state)
{
    Fix *f = *state;
    MemoryRegion *c = fx_container(f, "bus", 0x10000);
    MemoryRegion *r1 = fx_ram(f, "dev1", 0x1000);
    MemoryRegion *r2 = fx_ram(f, "dev2", 0x1000);
    MemoryRegion *al = fx_alias(f, "buswin", c, 0x1800, 0x2000);

    assert_int_equal(memory_region_add_subregion(c, 0x1000, r1), 0);
    assert_int_equal(memory_region_add_subregion(c, 0x3000, r2), 0);
    assert_int_equal(memory_region_add_subregion(f->root, 0x100000, al), 0);
    /* Window [0x1800, 0x3800) of bus: the tail of dev1, a hole, the head
     * of dev2. */
    ExpRange e[] = { R(0x100000, 0x800, r1, 0x800), R(0x101800, 0x800, r2, 0) };
    expect_flatview(f->as, e, NR(e));
    /* Mapping the container itself as well shows both views. */
    assert_int_equal(memory_region_add_subregion(f->root, 0x200000, c), 0);
    ExpRange e2[] = {
        R(0x100000, 0x800, r1, 0x800),
        R(0x101800, 0x800, r2, 0),
        R(0x201000, 0x1000, r1, 0),
        R(0x203000, 0x1000, r2, 0),
    };
    expect_flatview(f->as, e2, NR(e2));
    assert_int_equal(memory_context_check_flatviews(f->ctx), 0);
}

/* ---- rendering details -------------------------------------------------- */

static void test_terminating_container(void **state)
{
    Fix *f = *state;
    TestDev dev = { 0 };
    MemoryRegion *io = fx_io(f, &plain_ops, &dev, "io", 0x10000);
    MemoryRegion *pic = fx_io(f, &plain_ops, &dev, "pic", 2);
    AddressSpace *ioas = fx_as(f, io, "I/O");

    assert_int_equal(memory_region_add_subregion(io, 0x20, pic), 0);
    ExpRange e[] = {
        R(0, 0x20, io, 0),
        R(0x20, 2, pic, 0),
        R(0x22, 0x10000 - 0x22, io, 0x22),
    };
    expect_flatview(ioas, e, NR(e));
    FlatView *fv = address_space_get_flatview(ioas);
    assert_ptr_equal(flatview_root(fv), io);
    flatview_unref(fv);
    assert_int_equal(memory_context_check_flatviews(f->ctx), 0);
}

static void test_simplify(void **state)
{
    Fix *f = *state;
    TestDev dev = { 0 };
    MemoryRegion *ram = fx_ram(f, "ram", 0x10000);
    MemoryRegion *hole = fx_io(f, &plain_ops, &dev, "hole", 0x1000);

    assert_int_equal(memory_region_add_subregion(f->root, 0, ram), 0);
    assert_int_equal(memory_region_add_subregion_overlap(f->root, 0x4000, hole, 1), 0);
    ExpRange e1[] = {
        R(0, 0x4000, ram, 0),
        R(0x4000, 0x1000, hole, 0),
        R(0x5000, 0xb000, ram, 0x5000),
    };
    expect_flatview(f->as, e1, NR(e1));
    /* Contiguous pieces of one region are merged back into one range. */
    memory_region_set_enabled(hole, false);
    ExpRange e2[] = { R(0, 0x10000, ram, 0) };
    expect_flatview(f->as, e2, NR(e2));

    /* Two aliases showing consecutive bytes of one region merge too. */
    MemoryRegion *src = fx_ram(f, "src", 0x2000);
    MemoryRegion *a1 = fx_alias(f, "lo", src, 0, 0x1000);
    MemoryRegion *a2 = fx_alias(f, "hi", src, 0x1000, 0x1000);
    assert_int_equal(memory_region_add_subregion(f->root, 0x100000, a1), 0);
    assert_int_equal(memory_region_add_subregion(f->root, 0x101000, a2), 0);
    ExpRange e3[] = { R(0, 0x10000, ram, 0), R(0x100000, 0x2000, src, 0) };
    expect_flatview(f->as, e3, NR(e3));
    assert_int_equal(memory_context_check_flatviews(f->ctx), 0);
}

static void test_flatview_lookup(void **state)
{
    Fix *f = *state;
    MemoryRegion *a = fx_ram(f, "la", 0x1000);
    MemoryRegion *b = fx_ram(f, "lb", 0x3000);
    MemoryRegion *c = fx_ram(f, "lc", 0x1000);

    assert_int_equal(memory_region_add_subregion(f->root, 0x1000, a), 0);
    assert_int_equal(memory_region_add_subregion(f->root, 0x2000, b), 0);
    assert_int_equal(memory_region_add_subregion(f->root, 0x10000, c), 0);

    FlatView *fv = address_space_get_flatview(f->as);
    static const struct {
        uint64_t addr;
        int which;
    } probes[] = {
        { 0, -1 },      { 0xfff, -1 },   { 0x1000, 0 },      { 0x1fff, 0 },  { 0x2000, 1 },
        { 0x3abc, 1 },  { 0x4fff, 1 },   { 0x5000, -1 },     { 0xffff, -1 }, { 0x10000, 2 },
        { 0x10fff, 2 }, { 0x11000, -1 }, { UINT64_MAX, -1 },
    };
    MemoryRegion *regs[] = { a, b, c };
    for (size_t i = 0; i < NR(probes); i++) {
        const FlatRange *fr = flatview_lookup(fv, probes[i].addr);
        if (probes[i].which < 0) {
            if (fr) {
                fail_msg("lookup(0x%llx) found %s, expected nothing",
                         (unsigned long long)probes[i].addr, memory_region_name(fr->mr));
            }
        } else {
            if (!fr || fr->mr != regs[probes[i].which]) {
                fail_msg("lookup(0x%llx) found %s, expected %s", (unsigned long long)probes[i].addr,
                         fr ? memory_region_name(fr->mr) : "nothing",
                         memory_region_name(regs[probes[i].which]));
            }
            assert_true(fr->start <= probes[i].addr);
            assert_true((Int128)fr->start + fr->size > (Int128)probes[i].addr);
        }
    }
    /* Ranges are sorted and do not overlap. */
    for (size_t i = 1; i < flatview_nr_ranges(fv); i++) {
        const FlatRange *p = flatview_range(fv, i - 1), *q = flatview_range(fv, i);
        assert_true((Int128)p->start + p->size <= (Int128)q->start);
    }
    flatview_unref(fv);
}

static void test_shared_flatview(void **state)
{
    Fix *f = *state;
    MemoryRegion *ram = fx_ram(f, "ram", 0x1000);
    assert_int_equal(memory_region_add_subregion(f->root, 0, ram), 0);

    AddressSpace *as2 = fx_as(f, f->root, "cpu-memory");
    assert_string_equal(address_space_name(as2), "cpu-memory");
    assert_ptr_equal(address_space_root(as2), f->root);
    FlatView *v1 = address_space_get_flatview(f->as);
    FlatView *v2 = address_space_get_flatview(as2);
    assert_ptr_equal(v1, v2);
    flatview_unref(v1);
    flatview_unref(v2);

    /* A root that only holds a whole-size alias of system shares too
     * (QEMU's memory_region_get_flatview_root). */
    MemoryRegion *smm = fx_container(f, "smm-root", UINT64_MAX);
    MemoryRegion *al = fx_alias(f, "smm-alias", f->root, 0, UINT64_MAX);
    assert_int_equal(memory_region_add_subregion(smm, 0, al), 0);
    AddressSpace *as3 = fx_as(f, smm, "cpu-smm");
    v1 = address_space_get_flatview(f->as);
    FlatView *v3 = address_space_get_flatview(as3);
    assert_ptr_equal(v1, v3);
    /* system holds one enabled child at 0 that it covers whole, so QEMU's
     * rule descends to it: the FlatView root is the RAM itself. */
    assert_ptr_equal(flatview_root(v3), ram);
    flatview_unref(v1);
    flatview_unref(v3);

    /* Still shared after a change. */
    MemoryRegion *r2 = fx_ram(f, "ram2", 0x1000);
    assert_int_equal(memory_region_add_subregion(f->root, 0x4000, r2), 0);
    v1 = address_space_get_flatview(f->as);
    v2 = address_space_get_flatview(as2);
    v3 = address_space_get_flatview(as3);
    assert_ptr_equal(v1, v2);
    assert_ptr_equal(v1, v3);
    assert_int_equal(flatview_nr_ranges(v3), 2);
    assert_ptr_equal(flatview_root(v3), f->root);
    flatview_unref(v1);
    flatview_unref(v2);
    flatview_unref(v3);

    /* A second child in the smm root: no longer shared, and the extra
     * region shows only there. */
    MemoryRegion *sram = fx_ram(f, "smram", 0x1000);
    assert_int_equal(memory_region_add_subregion_overlap(smm, 0x8000, sram, 1), 0);
    v1 = address_space_get_flatview(f->as);
    v3 = address_space_get_flatview(as3);
    assert_ptr_not_equal(v1, v3);
    assert_int_equal(flatview_nr_ranges(v1), 2);
    assert_int_equal(flatview_nr_ranges(v3), 3);
    assert_ptr_equal(flatview_root(v3), smm);
    flatview_unref(v1);
    flatview_unref(v3);
    assert_int_equal(memory_context_check_flatviews(f->ctx), 0);
}

static void test_flatview_ref_survives_change(void **state)
{
    Fix *f = *state;
    MemoryRegion *ram = fx_ram(f, "ram", 0x1000);
    assert_int_equal(memory_region_add_subregion(f->root, 0, ram), 0);

    FlatView *old = address_space_get_flatview(f->as);
    flatview_ref(old); /* two references held */
    assert_int_equal(memory_region_del_subregion(f->root, ram), 0);
    FlatView *now = address_space_get_flatview(f->as);
    assert_ptr_not_equal(old, now);
    assert_int_equal(flatview_nr_ranges(now), 0);
    /* The old one is immutable and still readable. */
    assert_int_equal(flatview_nr_ranges(old), 1);
    assert_ptr_equal(flatview_range(old, 0)->mr, ram);
    flatview_unref(old);
    assert_int_equal(flatview_range(old, 0)->start, 0);
    flatview_unref(old);
    flatview_unref(now);
}

static void test_address_space_disabled_root(void **state)
{
    Fix *f = *state;
    MemoryRegion *r = fx_ram(f, "lonely", 0x1000);
    AddressSpace *as = fx_as(f, r, "ramonly");

    ExpRange e[] = { R(0, 0x1000, r, 0) };
    expect_flatview(as, e, NR(e));
    memory_region_set_enabled(r, false);
    FlatView *fv = address_space_get_flatview(as);
    assert_int_equal(flatview_nr_ranges(fv), 0);
    assert_null(flatview_root(fv));
    flatview_unref(fv);
    memory_region_set_enabled(r, true);
    expect_flatview(as, e, NR(e));
    fx_as_destroy(f, as);
    assert_int_equal(memory_context_check_flatviews(f->ctx), 0);
}

static void test_render_count(void **state)
{
    Fix *f = *state;
    MemoryRegion *r[3];
    for (int i = 0; i < 3; i++) {
        r[i] = fx_ram(f, "rc", 0x1000);
    }
    uint64_t n0 = memory_context_render_count(f->ctx);
    assert_int_equal(memory_region_add_subregion(f->root, 0, r[0]), 0);
    uint64_t n1 = memory_context_render_count(f->ctx);
    assert_true(n1 > n0);

    memory_region_transaction_begin(f->ctx);
    memory_region_transaction_commit(f->ctx);
    assert_int_equal(memory_context_render_count(f->ctx), n1);

    memory_region_transaction_begin(f->ctx);
    memory_region_transaction_begin(f->ctx);
    assert_int_equal(memory_region_add_subregion(f->root, 0x1000, r[1]), 0);
    memory_region_transaction_commit(f->ctx);
    assert_int_equal(memory_region_add_subregion(f->root, 0x2000, r[2]), 0);
    memory_region_set_enabled(r[0], false);
    assert_int_equal(memory_context_render_count(f->ctx), n1);
    assert_int_equal(fv_count(f->as), 1); /* not visible yet */
    memory_region_transaction_commit(f->ctx);
    assert_int_equal(memory_context_render_count(f->ctx), n1 + 1);
    assert_int_equal(fv_count(f->as), 2); /* r1 and r2; r0 hidden */
}

/* A deterministic series of changes; the incrementally kept FlatViews must
 * match a from-scratch render after every step. */
static void test_check_flatviews_series(void **state)
{
    Fix *f = *state;
    enum { N = 12 };
    MemoryRegion *r[N];
    MemoryRegion *box = fx_container(f, "box", 0x100000);
    uint32_t seed = 12345;
    char name[16];

    assert_int_equal(memory_region_add_subregion_overlap(f->root, 0x400000, box, 1), 0);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "s%d", i);
        r[i] = (i % 3 == 2) ? fx_alias(f, name, r[i - 1], 0x100, 0x2000) : fx_ram(f, name, 0x4000);
    }
    for (int step = 0; step < 200; step++) {
        seed = seed * 1103515245u + 12345u;
        unsigned v = seed >> 8;
        MemoryRegion *m = r[v % N];
        MemoryRegion *parent = (v >> 4) & 1 ? box : f->root;
        uint64_t addr = ((v >> 5) % 64) * 0x1000;
        int prio = (int)((v >> 12) % 5) - 2;
        MemoryRegion *cur = memory_region_get_container(m);

        switch ((v >> 16) % 5) {
        case 0:
        case 1:
            if (!cur) {
                assert_int_equal(memory_region_add_subregion_overlap(parent, addr, m, prio), 0);
            } else {
                assert_int_equal(memory_region_del_subregion(cur, m), 0);
            }
            break;
        case 2:
            memory_region_set_enabled(m, (v >> 20) & 1);
            break;
        case 3:
            if (cur) {
                assert_int_equal(memory_region_set_address(m, addr), 0);
            }
            break;
        case 4:
            memory_region_transaction_begin(f->ctx);
            memory_region_set_enabled(box, (v >> 21) & 1);
            memory_region_set_readonly(r[0], (v >> 22) & 1);
            memory_region_transaction_commit(f->ctx);
            break;
        }
        if (memory_context_check_flatviews(f->ctx) != 0) {
            dump_flatview(f->as);
            fail_msg("step %d: %s", step, memory_context_last_error(f->ctx));
        }
    }
}

/* A child's priority only counts among its siblings: a priority -10 child
 * of a priority 1 container still beats a priority 0 sibling of the
 * container, and a container clips what its children show. */
static void test_container_priority_and_clip(void **state)
{
    Fix *f = *state;
    MemoryRegion *box = fx_container(f, "box", 0x1000);
    MemoryRegion *low = fx_ram(f, "low-in-box", 0x2000);
    MemoryRegion *s = fx_ram(f, "sibling", 0x3000);

    assert_int_equal(memory_region_add_subregion_overlap(box, 0, low, -10), 0);
    assert_int_equal(memory_region_add_subregion_overlap(f->root, 0, box, 1), 0);
    assert_int_equal(memory_region_add_subregion(f->root, 0, s), 0);
    ExpRange e[] = { R(0, 0x1000, low, 0), R(0x1000, 0x2000, s, 0x1000) };
    expect_flatview(f->as, e, NR(e));

    /* A container at a non-zero address: children are relative to it. */
    assert_int_equal(memory_region_set_address(box, 0x10000), 0);
    ExpRange e2[] = { R(0, 0x3000, s, 0), R(0x10000, 0x1000, low, 0) };
    expect_flatview(f->as, e2, NR(e2));
    assert_int_equal(memory_context_check_flatviews(f->ctx), 0);
}

static void test_zero_size_region(void **state)
{
    Fix *f = *state;
    TestDev dev = { 0 };
    MemoryRegion *z = fx_slot(f);
    MemoryRegion *ram = fx_ram(f, "ram", 0x1000);

    assert_int_equal(memory_region_add_subregion(f->root, 0, ram), 0);
    if (memory_region_init_io(z, f->ctx, NULL, &dev, "empty", 0) != 0) {
        return; /* refusing a 0-byte region is acceptable */
    }
    fx_live(f, z);
    assert_int_equal(memory_region_size(z), 0);
    if (memory_region_add_subregion(f->root, 0x800, z) == 0) {
        ExpRange e[] = { R(0, 0x1000, ram, 0) };
        expect_flatview(f->as, e, NR(e));
    }
    assert_int_equal(memory_context_check_flatviews(f->ctx), 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fix_setup, fix_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_size_2_64),
        T(test_priorities),
        T(test_equal_priority_newest_wins),
        T(test_alias_of_container),
        T(test_terminating_container),
        T(test_simplify),
        T(test_flatview_lookup),
        T(test_shared_flatview),
        T(test_flatview_ref_survives_change),
        T(test_address_space_disabled_root),
        T(test_render_count),
        T(test_check_flatviews_series),
        T(test_container_priority_and_clip),
        T(test_zero_size_region),
    };
    return cmocka_run_group_tests_name("memory-flatview", tests, NULL, NULL);
}
