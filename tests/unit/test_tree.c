/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the region tree: init variants, subregions and their error
 * paths, priorities, aliases, enable/move, 2^64 regions, FlatView rendering,
 * lookup and sharing, and memory_context_check_flatviews.
 */
#include "unit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define R(s, sz, m, o) { .start = (s), .size = (Int128)(sz), .mr = (m), .offset = (o) }
#define NR(a) (sizeof(a) / sizeof((a)[0]))

static const MemoryRegionOps plain_ops = {
    .read = testdev_read,
    .write = testdev_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
};

/* ---- init variants ----------------------------------------------------- */

static void test_init_variants(void **state)
{
    Fix *f = *state;
    TestDev dev = { 0 };
    static uint8_t backing[0x2000];

    MemoryRegion *c = fx_container(f, "cont", 0x10000);
    assert_int_equal(memory_region_size(c), 0x10000);
    assert_true(memory_region_size128(c) == (Int128)0x10000);
    assert_string_equal(memory_region_name(c), "cont");
    assert_false(memory_region_is_ram(c));
    assert_null(memory_region_get_ram_ptr(c));
    assert_null(memory_region_get_container(c));

    MemoryRegion *io = fx_io(f, &plain_ops, &dev, "io", 0x100);
    assert_int_equal(memory_region_size(io), 0x100);
    assert_false(memory_region_is_ram(io));
    assert_false(memory_region_is_romd(io));
    assert_null(memory_region_get_ram_ptr(io));

    MemoryRegion *ram = fx_ram(f, "ram", 0x3000);
    uint8_t *p = memory_region_get_ram_ptr(ram);
    assert_non_null(p);
    assert_true(((uintptr_t)p & (MEMORY_PAGE_SIZE - 1)) == 0);
    for (unsigned i = 0; i < 0x3000; i++) {
        if (p[i] != 0) {
            fail_msg("init_ram: byte 0x%x is 0x%x, not zero", i, p[i]);
        }
    }
    assert_true(memory_region_is_ram(ram));
    assert_false(memory_region_is_romd(ram));

    MemoryRegion *rp = fx_slot(f);
    assert_int_equal(memory_region_init_ram_ptr(rp, f->ctx, NULL, "ramptr", sizeof(backing),
                                                 backing), 0);
    fx_live(f, rp);
    assert_ptr_equal(memory_region_get_ram_ptr(rp), backing);
    assert_true(memory_region_is_ram(rp));
    assert_int_equal(memory_region_size(rp), sizeof(backing));

    MemoryRegion *rom = fx_rom(f, "rom", 0x1000);
    assert_true(memory_region_is_ram(rom));
    assert_non_null(memory_region_get_ram_ptr(rom));

    MemoryRegion *al = fx_alias(f, "alias", ram, 0x1000, 0x800);
    assert_int_equal(memory_region_size(al), 0x800);
    assert_string_equal(memory_region_name(al), "alias");
    assert_ptr_equal(memory_region_get_ram_ptr(al), p + 0x1000);

    MemoryRegion *rd = fx_romdev(f, &plain_ops, &dev, "romdev", 0x1000);
    assert_true(memory_region_is_ram(rd));
    assert_true(memory_region_is_romd(rd));     /* readable by default */
    assert_non_null(memory_region_get_ram_ptr(rd));

    /* Nothing was mapped, so the FlatView is still empty. */
    assert_int_equal(fv_count(f->as), 0);
    assert_int_equal(memory_context_check_flatviews(f->ctx), 0);
    assert_string_equal(memory_context_last_error(f->ctx), "");
    assert_int_equal(dev.ncalls, 0);
}

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

/* ---- add / del and their error paths ---------------------------------- */

static void test_add_del_subregion(void **state)
{
    Fix *f = *state;
    MemoryRegion *ram = fx_ram(f, "ram", 0x2000);

    assert_int_equal(memory_region_add_subregion(f->root, 0x1000, ram), 0);
    assert_ptr_equal(memory_region_get_container(ram), f->root);
    ExpRange e[] = { R(0x1000, 0x2000, ram, 0) };
    expect_flatview(f->as, e, NR(e));

    assert_int_equal(memory_region_del_subregion(f->root, ram), 0);
    assert_null(memory_region_get_container(ram));
    assert_int_equal(fv_count(f->as), 0);

    /* Re-adding elsewhere works. */
    assert_int_equal(memory_region_add_subregion(f->root, 0x8000, ram), 0);
    ExpRange e2[] = { R(0x8000, 0x2000, ram, 0) };
    expect_flatview(f->as, e2, NR(e2));

    /* Adjacent non-overlapping siblings are fine. */
    MemoryRegion *next = fx_ram(f, "next", 0x1000);
    assert_int_equal(memory_region_add_subregion(f->root, 0xa000, next), 0);
    MemoryRegion *prev = fx_ram(f, "prev", 0x1000);
    assert_int_equal(memory_region_add_subregion(f->root, 0x7000, prev), 0);
    ExpRange e3[] = {
        R(0x7000, 0x1000, prev, 0), R(0x8000, 0x2000, ram, 0), R(0xa000, 0x1000, next, 0),
    };
    expect_flatview(f->as, e3, NR(e3));
    assert_int_equal(memory_context_check_flatviews(f->ctx), 0);
}

static void test_overlap_rejected(void **state)
{
    Fix *f = *state;
    MemoryRegion *x = fx_ram(f, "xram", 0x2000);
    MemoryRegion *y = fx_ram(f, "yram", 0x1000);
    MemoryRegion *o = fx_ram(f, "oram", 0x4000);
    MemoryRegion *z = fx_ram(f, "zram", 0x1000);

    assert_int_equal(memory_region_add_subregion(f->root, 0, x), 0);
    uint64_t renders = memory_context_render_count(f->ctx);

    /* y overlaps x; neither may overlap: error, tree unchanged. */
    int rc = memory_region_add_subregion(f->root, 0x1000, y);
    assert_true(rc < 0);
    assert_null(memory_region_get_container(y));
    ExpRange e1[] = { R(0, 0x2000, x, 0) };
    expect_flatview(f->as, e1, NR(e1));
    const char *err = memory_context_last_error(f->ctx);
    if (!contains(err, "yram") || !contains(err, "xram")) {
        fail_msg("last_error should name yram and xram: \"%s\"", err);
    }
    assert_int_equal(memory_context_render_count(f->ctx), renders);

    /* Ending exactly where x begins / starting where it ends is fine. */
    assert_int_equal(memory_region_add_subregion(f->root, 0x2000, y), 0);
    assert_int_equal(memory_region_del_subregion(f->root, y), 0);

    /* A sibling added as overlapping may overlap x... */
    assert_int_equal(memory_region_add_subregion_overlap(f->root, 0x1000, o, 1), 0);
    /* ...and a non-overlapping region may overlap o (only x counts). */
    assert_int_equal(memory_region_add_subregion(f->root, 0x3000, z), 0);
    ExpRange e2[] = { R(0, 0x1000, x, 0), R(0x1000, 0x4000, o, 0) };
    expect_flatview(f->as, e2, NR(e2));

    /* Still: z overlapping x is refused, and the tree stays as it was. */
    assert_int_equal(memory_region_del_subregion(f->root, z), 0);
    rc = memory_region_add_subregion(f->root, 0x1800, z);
    assert_true(rc < 0);
    assert_null(memory_region_get_container(z));
    expect_flatview(f->as, e2, NR(e2));
    assert_int_equal(memory_context_check_flatviews(f->ctx), 0);
}

static void test_add_twice_rejected(void **state)
{
    Fix *f = *state;
    MemoryRegion *c = fx_container(f, "other", 0x100000);
    MemoryRegion *ram = fx_ram(f, "twice", 0x1000);

    assert_int_equal(memory_region_add_subregion(f->root, 0x100000, c), 0);
    assert_int_equal(memory_region_add_subregion(f->root, 0x1000, ram), 0);
    /* One container at a time. */
    assert_true(memory_region_add_subregion(c, 0x2000, ram) < 0);
    assert_true(memory_region_add_subregion_overlap(f->root, 0x5000, ram, 3) < 0);
    assert_ptr_equal(memory_region_get_container(ram), f->root);
    assert_true(contains(memory_context_last_error(f->ctx), "twice"));
    ExpRange e[] = { R(0x1000, 0x1000, ram, 0) };
    expect_flatview(f->as, e, NR(e));
    /* A container cannot be placed inside itself. */
    assert_true(memory_region_add_subregion(c, 0, c) < 0);
    assert_ptr_equal(memory_region_get_container(c), f->root);
}

static void test_del_not_child(void **state)
{
    Fix *f = *state;
    MemoryRegion *c = fx_container(f, "parent", 0x10000);
    MemoryRegion *kid = fx_ram(f, "kid", 0x1000);
    MemoryRegion *loose = fx_ram(f, "loose", 0x1000);

    assert_int_equal(memory_region_add_subregion(f->root, 0x10000, c), 0);
    assert_int_equal(memory_region_add_subregion(c, 0x1000, kid), 0);

    int rc = memory_region_del_subregion(f->root, kid);
    assert_int_equal(rc, -ENOENT);
    assert_ptr_equal(memory_region_get_container(kid), c);
    const char *err = memory_context_last_error(f->ctx);
    if (!contains(err, "kid") || !contains(err, "system")) {
        fail_msg("last_error should name kid and system: \"%s\"", err);
    }
    ExpRange e[] = { R(0x11000, 0x1000, kid, 0) };
    expect_flatview(f->as, e, NR(e));

    assert_int_equal(memory_region_del_subregion(f->root, loose), -ENOENT);
    assert_true(contains(memory_context_last_error(f->ctx), "loose"));
    assert_int_equal(memory_region_del_subregion(c, loose), -ENOENT);
    expect_flatview(f->as, e, NR(e));
}

static void test_destroy_busy(void **state)
{
    Fix *f = *state;
    MemoryRegion *c = fx_container(f, "busy-cont", 0x10000);
    MemoryRegion *ram = fx_ram(f, "busy-ram", 0x1000);

    /* Mapped: refused, still mapped and visible. */
    assert_int_equal(memory_region_add_subregion(f->root, 0, ram), 0);
    assert_int_equal(memory_region_destroy(ram), -EBUSY);
    assert_true(contains(memory_context_last_error(f->ctx), "busy-ram"));
    assert_ptr_equal(memory_region_get_container(ram), f->root);
    ExpRange e[] = { R(0, 0x1000, ram, 0) };
    expect_flatview(f->as, e, NR(e));
    wr_ok(f->as, 0x10, 4, 0xdeadbeef);
    assert_int_equal(rd_ok(f->as, 0x10, 4), 0xdeadbeef);
    assert_int_equal(memory_region_del_subregion(f->root, ram), 0);

    /* A container with subregions: refused. */
    assert_int_equal(memory_region_add_subregion(c, 0x100, ram), 0);
    assert_int_equal(memory_region_destroy(c), -EBUSY);
    assert_true(contains(memory_context_last_error(f->ctx), "busy-cont"));
    assert_ptr_equal(memory_region_get_container(ram), c);
    assert_int_equal(memory_region_del_subregion(c, ram), 0);

    /* The target of an alias: refused until the alias is gone. */
    MemoryRegion *al = fx_alias(f, "busy-alias", ram, 0, 0x1000);
    assert_int_equal(memory_region_destroy(ram), -EBUSY);
    assert_true(contains(memory_context_last_error(f->ctx), "busy-ram"));
    /* The alias still works. */
    assert_int_equal(memory_region_add_subregion(f->root, 0x4000, al), 0);
    assert_int_equal(rd_ok(f->as, 0x4010, 4), 0xdeadbeef);
    assert_int_equal(memory_region_destroy(al), -EBUSY);   /* alias is mapped */
    assert_int_equal(memory_region_del_subregion(f->root, al), 0);
    assert_int_equal(memory_region_destroy(al), 0);
    fx_forget(f, al);
    assert_int_equal(memory_region_destroy(ram), 0);
    fx_forget(f, ram);
    assert_int_equal(memory_region_destroy(c), 0);
    fx_forget(f, c);
    assert_int_equal(fv_count(f->as), 0);
    assert_int_equal(memory_context_check_flatviews(f->ctx), 0);
}

static void test_alias_cycle(void **state)
{
    Fix *f = *state;

    /* An alias of itself. */
    MemoryRegion *self = fx_slot(f);
    assert_true(memory_region_init_alias(self, f->ctx, "selfie", self, 0, 0x1000) < 0);
    assert_true(contains(memory_context_last_error(f->ctx), "selfie"));

    /* An alias placed inside the region it aliases. */
    MemoryRegion *c = fx_container(f, "loop-cont", 0x100000);
    MemoryRegion *inner = fx_container(f, "loop-inner", 0x10000);
    MemoryRegion *ram = fx_ram(f, "loop-ram", 0x1000);
    assert_int_equal(memory_region_add_subregion(c, 0, ram), 0);
    assert_int_equal(memory_region_add_subregion(c, 0x10000, inner), 0);
    assert_int_equal(memory_region_add_subregion(f->root, 0, c), 0);

    MemoryRegion *a = fx_alias(f, "loop-alias", c, 0, 0x1000);
    int rc = memory_region_add_subregion(c, 0x20000, a);
    assert_true(rc < 0);
    assert_null(memory_region_get_container(a));
    const char *err = memory_context_last_error(f->ctx);
    if (!contains(err, "loop-alias") || !contains(err, "loop-cont")) {
        fail_msg("last_error should name loop-alias and loop-cont: \"%s\"", err);
    }
    /* Deeper: inside a descendant of the aliased region. */
    assert_true(memory_region_add_subregion_overlap(inner, 0x100, a, 1) < 0);
    assert_null(memory_region_get_container(a));

    /* Through an alias of the alias. */
    MemoryRegion *b = fx_alias(f, "loop-alias2", a, 0, 0x800);
    assert_true(memory_region_add_subregion(inner, 0x2000, b) < 0);
    assert_null(memory_region_get_container(b));

    ExpRange e[] = { R(0, 0x1000, ram, 0) };
    expect_flatview(f->as, e, NR(e));

    /* Placing the aliases outside the aliased region is fine. */
    assert_int_equal(memory_region_add_subregion(f->root, 0x200000, a), 0);
    assert_int_equal(memory_region_add_subregion(f->root, 0x300000, b), 0);
    ExpRange e2[] = {
        R(0, 0x1000, ram, 0), R(0x200000, 0x1000, ram, 0), R(0x300000, 0x800, ram, 0),
    };
    expect_flatview(f->as, e2, NR(e2));
    assert_int_equal(memory_context_check_flatviews(f->ctx), 0);
}

static void test_past_container_end(void **state)
{
    Fix *f = *state;
    MemoryRegion *c = fx_container(f, "small", 0x1000);
    MemoryRegion *r = fx_ram(f, "clipme", 0x1000);

    assert_int_equal(memory_region_add_subregion(f->root, 0x10000, c), 0);

    assert_true(memory_region_add_subregion(c, 0x1000, r) < 0);
    assert_true(contains(memory_context_last_error(f->ctx), "clipme"));
    assert_true(memory_region_add_subregion(c, 0x5000, r) < 0);
    assert_true(memory_region_add_subregion_overlap(c, 0x1000, r, 1) < 0);
    assert_null(memory_region_get_container(r));
    assert_int_equal(fv_count(f->as), 0);

    /* Partially past the end: clipped to the container. */
    assert_int_equal(memory_region_add_subregion(c, 0x800, r), 0);
    ExpRange e[] = { R(0x10800, 0x800, r, 0) };
    expect_flatview(f->as, e, NR(e));

    /* Moving it out of the container is refused too. */
    assert_int_equal(memory_region_set_address(r, 0x1000), -EINVAL);
    expect_flatview(f->as, e, NR(e));
    assert_int_equal(memory_region_set_address(r, 0x400), 0);
    ExpRange e2[] = { R(0x10400, 0xc00, r, 0) };
    expect_flatview(f->as, e2, NR(e2));
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
        R(0, 0x2000, ram, 0), R(0x2000, 0x1000, vga, 0), R(0x3000, 0x5000, ram, 0x3000),
        R(0x8000, 0x1000, bg, 0x8000), R(0x9000, 0x1000, pcidev, 0),
        R(0xa000, 0x6000, bg, 0xa000),
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

static void test_enabled(void **state)
{
    Fix *f = *state;
    MemoryRegion *ram = fx_ram(f, "ram", 0x1000);
    MemoryRegion *hi = fx_ram(f, "hi", 0x1000);

    assert_int_equal(memory_region_add_subregion(f->root, 0, ram), 0);
    assert_int_equal(memory_region_add_subregion_overlap(f->root, 0, hi, 1), 0);
    ExpRange e1[] = { R(0, 0x1000, hi, 0) };
    expect_flatview(f->as, e1, NR(e1));

    memory_region_set_enabled(hi, false);
    ExpRange e2[] = { R(0, 0x1000, ram, 0) };
    expect_flatview(f->as, e2, NR(e2));
    assert_ptr_equal(memory_region_get_container(hi), f->root);

    memory_region_set_enabled(ram, false);
    assert_int_equal(fv_count(f->as), 0);
    memory_region_set_enabled(hi, true);
    expect_flatview(f->as, e1, NR(e1));
    memory_region_set_enabled(ram, true);
    memory_region_set_enabled(ram, true);
    expect_flatview(f->as, e1, NR(e1));

    /* Disabling a container hides all it holds. */
    MemoryRegion *c = fx_container(f, "box", 0x10000);
    MemoryRegion *in = fx_ram(f, "inbox", 0x1000);
    assert_int_equal(memory_region_add_subregion(c, 0x1000, in), 0);
    assert_int_equal(memory_region_add_subregion(f->root, 0x10000, c), 0);
    ExpRange e3[] = { R(0, 0x1000, hi, 0), R(0x11000, 0x1000, in, 0) };
    expect_flatview(f->as, e3, NR(e3));
    memory_region_set_enabled(c, false);
    expect_flatview(f->as, e1, NR(e1));
    memory_region_set_enabled(c, true);
    expect_flatview(f->as, e3, NR(e3));
    assert_int_equal(memory_context_check_flatviews(f->ctx), 0);
}

static void test_set_address(void **state)
{
    Fix *f = *state;
    MemoryRegion *a = fx_ram(f, "mover", 0x1000);
    MemoryRegion *b = fx_ram(f, "blocker", 0x1000);

    assert_int_equal(memory_region_add_subregion(f->root, 0x1000, a), 0);
    assert_int_equal(memory_region_add_subregion(f->root, 0x8000, b), 0);
    assert_int_equal(memory_region_set_address(a, 0x5000), 0);
    ExpRange e1[] = { R(0x5000, 0x1000, a, 0), R(0x8000, 0x1000, b, 0) };
    expect_flatview(f->as, e1, NR(e1));

    /* Onto a non-overlapping sibling: refused, unchanged. */
    int rc = memory_region_set_address(a, 0x8800);
    if (rc != -EINVAL) {
        fail_msg("set_address onto a non-overlapping sibling returned %d; memory.h "
                 "promises -EINVAL (%d)", rc, -EINVAL);
    }
    const char *err = memory_context_last_error(f->ctx);
    if (!contains(err, "mover") || !contains(err, "blocker")) {
        fail_msg("last_error should name mover and blocker: \"%s\"", err);
    }
    expect_flatview(f->as, e1, NR(e1));

    /* Same address: fine, nothing changes. */
    assert_int_equal(memory_region_set_address(a, 0x5000), 0);
    expect_flatview(f->as, e1, NR(e1));

    /* An overlapping region moves freely. */
    MemoryRegion *o = fx_ram(f, "floater", 0x1000);
    assert_int_equal(memory_region_add_subregion_overlap(f->root, 0x20000, o, 1), 0);
    assert_int_equal(memory_region_set_address(o, 0x8800), 0);
    ExpRange e2[] = {
        R(0x5000, 0x1000, a, 0), R(0x8000, 0x800, b, 0), R(0x8800, 0x1000, o, 0),
    };
    expect_flatview(f->as, e2, NR(e2));
    assert_int_equal(memory_context_check_flatviews(f->ctx), 0);
}

static void test_set_alias_offset(void **state)
{
    Fix *f = *state;
    MemoryRegion *ram = fx_ram(f, "ram", 0x4000);
    MemoryRegion *al = fx_alias(f, "window", ram, 0, 0x1000);
    uint8_t *p = memory_region_get_ram_ptr(ram);

    memset(p + 0x2000, 0x5a, 0x1000);
    assert_int_equal(memory_region_add_subregion(f->root, 0x10000, al), 0);
    ExpRange e1[] = { R(0x10000, 0x1000, ram, 0) };
    expect_flatview(f->as, e1, NR(e1));
    assert_int_equal(rd_ok(f->as, 0x10000, 1), 0);

    assert_int_equal(memory_region_set_alias_offset(al, 0x2000), 0);
    ExpRange e2[] = { R(0x10000, 0x1000, ram, 0x2000) };
    expect_flatview(f->as, e2, NR(e2));
    assert_int_equal(rd_ok(f->as, 0x10000, 4), 0x5a5a5a5a);
    assert_ptr_equal(memory_region_get_ram_ptr(al), p + 0x2000);

    /* Not an alias. */
    assert_int_equal(memory_region_set_alias_offset(ram, 0x1000), -EINVAL);
    assert_true(contains(memory_context_last_error(f->ctx), "ram"));
    expect_flatview(f->as, e2, NR(e2));
    assert_int_equal(memory_context_check_flatviews(f->ctx), 0);
}

static void test_alias_of_alias(void **state)
{
    Fix *f = *state;
    MemoryRegion *ram = fx_ram(f, "base", 0x10000);
    MemoryRegion *a = fx_alias(f, "a1", ram, 0x1000, 0x4000);
    MemoryRegion *b = fx_alias(f, "a2", a, 0x100, 0x1000);
    uint8_t *p = memory_region_get_ram_ptr(ram);

    p[0x1100] = 0xab;
    p[0x1101] = 0xcd;
    assert_int_equal(memory_region_add_subregion(f->root, 0x50000, b), 0);
    ExpRange e[] = { R(0x50000, 0x1000, ram, 0x1100) };
    expect_flatview(f->as, e, NR(e));
    assert_ptr_equal(memory_region_get_ram_ptr(b), p + 0x1100);
    assert_int_equal(rd_ok(f->as, 0x50000, 2), 0xcdab);
    wr_ok(f->as, 0x50010, 1, 0x77);
    assert_int_equal(p[0x1110], 0x77);

    /* Moving the middle alias's window moves what b shows. */
    assert_int_equal(memory_region_set_alias_offset(a, 0x3000), 0);
    ExpRange e2[] = { R(0x50000, 0x1000, ram, 0x3100) };
    expect_flatview(f->as, e2, NR(e2));
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
        R(0x100000, 0x800, r1, 0x800), R(0x101800, 0x800, r2, 0),
        R(0x201000, 0x1000, r1, 0), R(0x203000, 0x1000, r2, 0),
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
        R(0, 0x20, io, 0), R(0x20, 2, pic, 0), R(0x22, 0x10000 - 0x22, io, 0x22),
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
        R(0, 0x4000, ram, 0), R(0x4000, 0x1000, hole, 0), R(0x5000, 0xb000, ram, 0x5000),
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
    static const struct { uint64_t addr; int which; } probes[] = {
        { 0, -1 }, { 0xfff, -1 }, { 0x1000, 0 }, { 0x1fff, 0 }, { 0x2000, 1 },
        { 0x3abc, 1 }, { 0x4fff, 1 }, { 0x5000, -1 }, { 0xffff, -1 },
        { 0x10000, 2 }, { 0x10fff, 2 }, { 0x11000, -1 }, { UINT64_MAX, -1 },
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
                fail_msg("lookup(0x%llx) found %s, expected %s",
                         (unsigned long long)probes[i].addr,
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
    flatview_ref(old);                  /* two references held */
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
    assert_int_equal(fv_count(f->as), 1);      /* not visible yet */
    memory_region_transaction_commit(f->ctx);
    assert_int_equal(memory_context_render_count(f->ctx), n1 + 1);
    assert_int_equal(fv_count(f->as), 2);      /* r1 and r2; r0 hidden */
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
        r[i] = (i % 3 == 2) ? fx_alias(f, name, r[i - 1], 0x100, 0x2000)
                            : fx_ram(f, name, 0x4000);
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

static void test_last_error_fresh(void **state)
{
    (void)state;
    MemoryContext *ctx = memory_context_new();
    assert_non_null(ctx);
    assert_string_equal(memory_context_last_error(ctx), "");
    assert_int_equal(memory_context_check_flatviews(ctx), 0);
    /* Two contexts do not share state. */
    MemoryContext *ctx2 = memory_context_new();
    assert_non_null(ctx2);
    MemoryRegion a, b, c;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    memset(&c, 0, sizeof(c));
    assert_int_equal(memory_region_init(&a, ctx, "ctx1-root", 0x10000), 0);
    assert_int_equal(memory_region_init_ram(&b, ctx, NULL, "ctx1-x", 0x1000), 0);
    assert_int_equal(memory_region_init_ram(&c, ctx, NULL, "ctx1-y", 0x1000), 0);
    assert_int_equal(memory_region_add_subregion(&a, 0, &b), 0);
    assert_true(memory_region_add_subregion(&a, 0, &c) < 0);
    assert_string_not_equal(memory_context_last_error(ctx), "");
    assert_string_equal(memory_context_last_error(ctx2), "");
    assert_int_equal(memory_region_del_subregion(&a, &b), 0);
    assert_int_equal(memory_region_destroy(&c), 0);
    assert_int_equal(memory_region_destroy(&b), 0);
    assert_int_equal(memory_region_destroy(&a), 0);
    memory_context_free(ctx2);
    memory_context_free(ctx);
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
        return;     /* refusing a 0-byte region is acceptable */
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
        T(test_init_variants),
        T(test_size_2_64),
        T(test_add_del_subregion),
        T(test_overlap_rejected),
        T(test_add_twice_rejected),
        T(test_del_not_child),
        T(test_destroy_busy),
        T(test_alias_cycle),
        T(test_past_container_end),
        T(test_priorities),
        T(test_equal_priority_newest_wins),
        T(test_enabled),
        T(test_set_address),
        T(test_set_alias_offset),
        T(test_alias_of_alias),
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
        cmocka_unit_test(test_last_error_fresh),
    };
    return cmocka_run_group_tests_name("memory-tree", tests, NULL, NULL);
}
