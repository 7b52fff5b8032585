/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the region tree: init variants, adding/removing subregions
 * and every error path (overlap, second container, not a child, destroy
 * while busy, alias cycles, past the container's end), enable, move, alias
 * windows and aliases of aliases, memory_context_last_error.
 */
#include "unit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

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
                                                backing),
                     0);
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
    assert_true(memory_region_is_romd(rd)); /* readable by default */
    assert_non_null(memory_region_get_ram_ptr(rd));

    /* Nothing was mapped, so the FlatView is still empty. */
    assert_int_equal(fv_count(f->as), 0);
    assert_int_equal(memory_context_check_flatviews(f->ctx), 0);
    assert_string_equal(memory_context_last_error(f->ctx), "");
    assert_int_equal(dev.ncalls, 0);
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
        R(0x7000, 0x1000, prev, 0),
        R(0x8000, 0x2000, ram, 0),
        R(0xa000, 0x1000, next, 0),
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
    assert_int_equal(memory_region_destroy(al), -EBUSY); /* alias is mapped */
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
        R(0, 0x1000, ram, 0),
        R(0x200000, 0x1000, ram, 0),
        R(0x300000, 0x800, ram, 0),
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
                 "promises -EINVAL (%d)",
                 rc, -EINVAL);
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
        R(0x5000, 0x1000, a, 0),
        R(0x8000, 0x800, b, 0),
        R(0x8800, 0x1000, o, 0),
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

#define T(fn) cmocka_unit_test_setup_teardown(fn, fix_setup, fix_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_init_variants),
        T(test_add_del_subregion),
        T(test_overlap_rejected),
        T(test_add_twice_rejected),
        T(test_del_not_child),
        T(test_destroy_busy),
        T(test_alias_cycle),
        T(test_past_container_end),
        T(test_enabled),
        T(test_set_address),
        T(test_set_alias_offset),
        T(test_alias_of_alias),
        cmocka_unit_test(test_last_error_fresh),
    };
    return cmocka_run_group_tests_name("memory-tree", tests, NULL, NULL);
}
