/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of dirty logging: per-client masks, set/get/reset, bitmaps
 * merged by accelerators, log_sync, and dirtying by guest writes.
 */
#include "unit.h"

#include <errno.h>
#include <string.h>

#define PG MEMORY_PAGE_SIZE

static void test_set_log_mask(void **state)
{
    Fix *f = *state;
    TestDev dev = { 0 };
    MemoryRegion *ram = fx_ram(f, "vram", 16 * PG);
    MemoryRegion *io = fx_io(f, &testdev_ops, &dev, "io", 0x100);
    MemoryRegion *c = fx_container(f, "c", 0x1000);

    assert_int_equal(memory_region_get_dirty_log_mask(ram), 0);
    assert_int_equal(memory_region_set_log(ram, true, DIRTY_MEMORY_VGA), 0);
    assert_int_equal(memory_region_get_dirty_log_mask(ram), 1u << DIRTY_MEMORY_VGA);
    assert_int_equal(memory_region_set_log(ram, true, DIRTY_MEMORY_MIGRATION), 0);
    assert_int_equal(memory_region_get_dirty_log_mask(ram),
                     (1u << DIRTY_MEMORY_VGA) | (1u << DIRTY_MEMORY_MIGRATION));
    assert_int_equal(memory_region_set_log(ram, false, DIRTY_MEMORY_VGA), 0);
    assert_int_equal(memory_region_get_dirty_log_mask(ram), 1u << DIRTY_MEMORY_MIGRATION);

    /* Not RAM. */
    assert_int_equal(memory_region_set_log(io, true, DIRTY_MEMORY_VGA), -EINVAL);
    assert_true(contains(memory_context_last_error(f->ctx), "io"));
    assert_int_equal(memory_region_set_log(c, true, DIRTY_MEMORY_VGA), -EINVAL);
    assert_int_equal(memory_region_get_dirty_log_mask(io), 0);

    /* The mask shows in the FlatView. */
    assert_int_equal(memory_region_add_subregion(f->root, 0, ram), 0);
    FlatView *fv = address_space_get_flatview(f->as);
    assert_int_equal(flatview_lookup(fv, 0)->dirty_log_mask, 1u << DIRTY_MEMORY_MIGRATION);
    flatview_unref(fv);
    assert_int_equal(memory_region_set_log(ram, true, DIRTY_MEMORY_VGA), 0);
    fv = address_space_get_flatview(f->as);
    assert_int_equal(flatview_lookup(fv, 0)->dirty_log_mask,
                     (1u << DIRTY_MEMORY_VGA) | (1u << DIRTY_MEMORY_MIGRATION));
    flatview_unref(fv);
    assert_int_equal(memory_context_check_flatviews(f->ctx), 0);
}

static void test_set_get_reset(void **state)
{
    Fix *f = *state;
    MemoryRegion *ram = fx_ram(f, "vram", 16 * PG);

    assert_int_equal(memory_region_set_log(ram, true, DIRTY_MEMORY_VGA), 0);
    assert_int_equal(memory_region_set_log(ram, true, DIRTY_MEMORY_MIGRATION), 0);
    assert_false(memory_region_get_dirty(ram, 0, 16 * PG, DIRTY_MEMORY_VGA));
    assert_false(memory_region_get_dirty(ram, 0, 16 * PG, DIRTY_MEMORY_MIGRATION));

    memory_region_set_dirty(ram, 3 * PG + 10, 1);
    assert_true(memory_region_get_dirty(ram, 3 * PG, PG, DIRTY_MEMORY_VGA));
    assert_true(memory_region_get_dirty(ram, 3 * PG, PG, DIRTY_MEMORY_MIGRATION));
    assert_true(memory_region_get_dirty(ram, 3 * PG + PG - 1, 1, DIRTY_MEMORY_VGA));
    assert_false(memory_region_get_dirty(ram, 2 * PG, PG, DIRTY_MEMORY_VGA));
    assert_false(memory_region_get_dirty(ram, 4 * PG, PG, DIRTY_MEMORY_VGA));
    assert_true(memory_region_get_dirty(ram, 0, 16 * PG, DIRTY_MEMORY_VGA));
    assert_true(memory_region_get_dirty(ram, 2 * PG + 1, PG, DIRTY_MEMORY_VGA));

    /* A range crossing a page boundary dirties both pages. */
    memory_region_set_dirty(ram, 6 * PG - 2, 4);
    assert_true(memory_region_get_dirty(ram, 5 * PG, PG, DIRTY_MEMORY_VGA));
    assert_true(memory_region_get_dirty(ram, 6 * PG, PG, DIRTY_MEMORY_VGA));
    assert_false(memory_region_get_dirty(ram, 7 * PG, PG, DIRTY_MEMORY_VGA));

    /* Clients are independent. */
    memory_region_reset_dirty(ram, 0, 16 * PG, DIRTY_MEMORY_VGA);
    assert_false(memory_region_get_dirty(ram, 0, 16 * PG, DIRTY_MEMORY_VGA));
    assert_true(memory_region_get_dirty(ram, 3 * PG, PG, DIRTY_MEMORY_MIGRATION));
    assert_true(memory_region_get_dirty(ram, 6 * PG, PG, DIRTY_MEMORY_MIGRATION));

    /* Partial reset. */
    memory_region_reset_dirty(ram, 3 * PG, PG, DIRTY_MEMORY_MIGRATION);
    assert_false(memory_region_get_dirty(ram, 3 * PG, PG, DIRTY_MEMORY_MIGRATION));
    assert_true(memory_region_get_dirty(ram, 5 * PG, 2 * PG, DIRTY_MEMORY_MIGRATION));

    /* Last page. */
    memory_region_set_dirty(ram, 16 * PG - 1, 1);
    assert_true(memory_region_get_dirty(ram, 15 * PG, PG, DIRTY_MEMORY_VGA));
}

static void test_set_dirty_bitmap(void **state)
{
    Fix *f = *state;
    MemoryRegion *ram = fx_ram(f, "big", 200 * PG);

    assert_int_equal(memory_region_set_log(ram, true, DIRTY_MEMORY_VGA), 0);
    assert_int_equal(memory_region_set_log(ram, true, DIRTY_MEMORY_MIGRATION), 0);
    uint64_t bm[2] = { 0x5, 1ull << 7 }; /* pages 0, 2, 64+7 of the window */
    memory_region_set_dirty_bitmap(ram, 2 * PG, bm, 128);
    for (unsigned pg = 0; pg < 200; pg++) {
        bool want = pg == 2 || pg == 4 || pg == 2 + 64 + 7;
        bool vga = memory_region_get_dirty(ram, (uint64_t)pg * PG, PG, DIRTY_MEMORY_VGA);
        bool mig = memory_region_get_dirty(ram, (uint64_t)pg * PG, PG, DIRTY_MEMORY_MIGRATION);
        if (vga != want || mig != want) {
            fail_msg("page %u: vga %d migration %d, expected %d", pg, vga, mig, want);
        }
    }
    /* Merged, not replaced. */
    uint64_t bm2 = 0x1;
    memory_region_set_dirty_bitmap(ram, 3 * PG, &bm2, 1);
    assert_true(memory_region_get_dirty(ram, 2 * PG, PG, DIRTY_MEMORY_VGA));
    assert_true(memory_region_get_dirty(ram, 3 * PG, PG, DIRTY_MEMORY_VGA));
    /* A window ending at the last page. */
    uint64_t bm3 = 1ull << 3;
    memory_region_set_dirty_bitmap(ram, 196 * PG, &bm3, 4);
    assert_true(memory_region_get_dirty(ram, 199 * PG, PG, DIRTY_MEMORY_MIGRATION));
    assert_false(memory_region_get_dirty(ram, 198 * PG, PG, DIRTY_MEMORY_MIGRATION));
}

/* memory_region_take_dirty: every mark moved out and cleared, whatever the
 * start (a word at a time from a multiple of 64 pages, else page by page),
 * through an alias, the count of bits newly set, and nothing past the end
 * or of another client touched. */
static void test_take_dirty(void **state)
{
    Fix *f = *state;
    MemoryRegion *ram = fx_ram(f, "big", 200 * PG);
    assert_int_equal(memory_region_set_log(ram, true, DIRTY_MEMORY_VGA), 0);
    assert_int_equal(memory_region_set_log(ram, true, DIRTY_MEMORY_MIGRATION), 0);
    static const unsigned marked[] = { 0, 1, 63, 64, 65, 127, 128, 150, 191, 199 };
    for (unsigned start = 0; start < 140; start += 1 + start / 3) { /* aligned and not */
        uint64_t npages = 200 - start;
        for (unsigned i = 0; i < sizeof(marked) / sizeof(marked[0]); i++)
            memory_region_set_dirty(ram, (uint64_t)marked[i] * PG, 1);
        uint64_t bm[4] = { 0 };
        bm[0] = 1; /* already set: not counted again */
        uint64_t added = memory_region_take_dirty(ram, (uint64_t)start * PG, npages,
                                                  DIRTY_MEMORY_MIGRATION, bm);
        uint64_t want_added = 0;
        for (unsigned pg = 0; pg < 200; pg++) {
            bool was = false;
            for (unsigned i = 0; i < sizeof(marked) / sizeof(marked[0]); i++)
                was |= marked[i] == pg;
            bool in = pg >= start;
            bool got = in && (bm[(pg - start) / 64] >> ((pg - start) % 64) & 1);
            bool want_bit = in && (was || pg == start);
            if (got != want_bit)
                fail_msg("start %u, page %u: bit %d, expected %d", start, pg, got, want_bit);
            want_added += in && was && pg != start;
            bool left = memory_region_get_dirty(ram, (uint64_t)pg * PG, PG, DIRTY_MEMORY_MIGRATION);
            if (left != (was && !in))
                fail_msg("start %u, page %u: mark left %d, expected %d", start, pg, left,
                         was && !in);
            if (memory_region_get_dirty(ram, (uint64_t)pg * PG, PG, DIRTY_MEMORY_VGA) != was)
                fail_msg("start %u, page %u: the other client's mark changed", start, pg);
        }
        assert_int_equal(added, want_added);
        memory_region_reset_dirty(ram, 0, 200 * PG, DIRTY_MEMORY_MIGRATION);
        memory_region_reset_dirty(ram, 0, 200 * PG, DIRTY_MEMORY_VGA);
    }
    /* npages past the end: stops there; bits beyond stay as they were */
    memory_region_set_dirty(ram, 199 * PG, 1);
    uint64_t bm[2] = { 0, 0 };
    assert_int_equal(memory_region_take_dirty(ram, 192 * PG, 128, DIRTY_MEMORY_MIGRATION, bm), 1);
    assert_true(bm[0] == 1ull << 7 && bm[1] == 0);
    /* through an alias (its offset added) */
    MemoryRegion *al = fx_alias(f, "al", ram, 64 * PG, 64 * PG);
    memory_region_set_dirty(ram, 70 * PG, 1);
    bm[0] = 0;
    assert_int_equal(memory_region_take_dirty(al, 0, 64, DIRTY_MEMORY_MIGRATION, bm), 1);
    assert_true(bm[0] == 1ull << 6);
    assert_false(memory_region_get_dirty(ram, 70 * PG, PG, DIRTY_MEMORY_MIGRATION));
    /* a client that stopped logging keeps its marks (as get_dirty reads
     * them) until taken; zero pages and a client never logged: nothing */
    uint64_t big[4] = { 0 };
    memory_region_set_dirty(ram, 130 * PG, 1);
    assert_int_equal(memory_region_set_log(ram, false, DIRTY_MEMORY_MIGRATION), 0);
    assert_int_equal(memory_region_take_dirty(ram, 0, 200, DIRTY_MEMORY_MIGRATION, big), 1);
    assert_true(big[2] == 1ull << 2 && !big[0] && !big[1] && !big[3]);
    assert_int_equal(memory_region_take_dirty(ram, 0, 200, DIRTY_MEMORY_MIGRATION, big), 0);
    assert_int_equal(memory_region_take_dirty(ram, 0, 0, DIRTY_MEMORY_VGA, big), 0);
    MemoryRegion *other = fx_ram(f, "other", 64 * PG);
    assert_int_equal(memory_region_take_dirty(other, 0, 64, DIRTY_MEMORY_VGA, big), 0);
}

static void sync_feed(Rec *r, MemoryRegionSection *s)
{
    const uint64_t *bm = r->user;
    memory_region_set_dirty_bitmap(s->mr, s->offset_within_region, bm,
                                   (uint64_t)(s->size / MEMORY_PAGE_SIZE));
}

static void test_sync_dirty_bitmap(void **state)
{
    Fix *f = *state;
    MemoryRegion *ram = fx_ram(f, "synced", 8 * PG);
    MemoryRegion *other = fx_ram(f, "other", 8 * PG);
    static uint64_t bm = 0x81; /* first and last page */
    Rec rec;

    assert_int_equal(memory_region_add_subregion(f->root, 0x100000, ram), 0);
    assert_int_equal(memory_region_add_subregion(f->root, 0x200000, other), 0);
    assert_int_equal(memory_region_set_log(ram, true, DIRTY_MEMORY_MIGRATION), 0);
    assert_int_equal(memory_region_set_log(other, true, DIRTY_MEMORY_MIGRATION), 0);
    rec_init(&rec);
    rec.on_log_sync = sync_feed;
    rec.user = &bm;
    memory_listener_register(&rec.l, f->as);
    rec_reset(&rec);

    assert_false(memory_region_get_dirty(ram, 0, 8 * PG, DIRTY_MEMORY_MIGRATION));
    memory_region_sync_dirty_bitmap(ram);
    assert_int_equal(rec.n[EV_LOG_SYNC], 1);
    assert_ptr_equal(rec.ev[0].mr, ram);
    assert_int_equal(rec.ev[0].start, 0x100000);
    assert_true(rec.ev[0].size == (Int128)(8 * PG));
    assert_true(memory_region_get_dirty(ram, 0, PG, DIRTY_MEMORY_MIGRATION));
    assert_true(memory_region_get_dirty(ram, 7 * PG, PG, DIRTY_MEMORY_MIGRATION));
    assert_false(memory_region_get_dirty(ram, PG, 6 * PG, DIRTY_MEMORY_MIGRATION));
    assert_false(memory_region_get_dirty(other, 0, 8 * PG, DIRTY_MEMORY_MIGRATION));
    memory_listener_unregister(&rec.l);
}

static void test_guest_writes_dirty(void **state)
{
    Fix *f = *state;
    MemoryRegion *ram = fx_ram(f, "ram", 16 * PG);
    MemoryRegion *al = fx_alias(f, "ramwin", ram, 8 * PG, 4 * PG);

    assert_int_equal(memory_region_add_subregion(f->root, 0, ram), 0);
    assert_int_equal(memory_region_add_subregion(f->root, 0x100000, al), 0);
    assert_int_equal(memory_region_set_log(ram, true, DIRTY_MEMORY_VGA), 0);
    assert_int_equal(memory_region_set_log(ram, true, DIRTY_MEMORY_MIGRATION), 0);

    wr_ok(f->as, 2 * PG + 5, 1, 0xaa);
    assert_true(memory_region_get_dirty(ram, 2 * PG, PG, DIRTY_MEMORY_VGA));
    assert_true(memory_region_get_dirty(ram, 2 * PG, PG, DIRTY_MEMORY_MIGRATION));
    assert_false(memory_region_get_dirty(ram, PG, PG, DIRTY_MEMORY_VGA));
    assert_false(memory_region_get_dirty(ram, 3 * PG, PG, DIRTY_MEMORY_VGA));

    /* A long write across pages 3 and 4. */
    uint8_t buf[64];
    memset(buf, 1, sizeof(buf));
    assert_int_equal(address_space_write(f->as, 4 * PG - 32, buf, sizeof(buf)), MEMTX_OK);
    assert_true(memory_region_get_dirty(ram, 3 * PG, PG, DIRTY_MEMORY_VGA));
    assert_true(memory_region_get_dirty(ram, 4 * PG, PG, DIRTY_MEMORY_VGA));
    assert_false(memory_region_get_dirty(ram, 5 * PG, PG, DIRTY_MEMORY_VGA));

    /* Through the alias: page 8 + 1 of ram. */
    wr_ok(f->as, 0x100000 + PG, 4, 1);
    assert_true(memory_region_get_dirty(ram, 9 * PG, PG, DIRTY_MEMORY_VGA));
    assert_false(memory_region_get_dirty(ram, 8 * PG, PG, DIRTY_MEMORY_VGA));

    /* Reads do not dirty. */
    memory_region_reset_dirty(ram, 0, 16 * PG, DIRTY_MEMORY_VGA);
    (void)rd_ok(f->as, 10 * PG, 8);
    assert_false(memory_region_get_dirty(ram, 0, 16 * PG, DIRTY_MEMORY_VGA));
    assert_true(memory_region_get_dirty(ram, 2 * PG, PG, DIRTY_MEMORY_MIGRATION));

    /* Direct dispatch to the region dirties too. */
    assert_int_equal(memory_region_dispatch_write(ram, 12 * PG, 7, 4), MEMTX_OK);
    assert_true(memory_region_get_dirty(ram, 12 * PG, PG, DIRTY_MEMORY_VGA));
}

static void test_log_only_requested_client(void **state)
{
    Fix *f = *state;
    MemoryRegion *ram = fx_ram(f, "ram", 4 * PG);

    assert_int_equal(memory_region_add_subregion(f->root, 0, ram), 0);
    assert_int_equal(memory_region_set_log(ram, true, DIRTY_MEMORY_VGA), 0);
    wr_ok(f->as, 0, 4, 1);
    assert_true(memory_region_get_dirty(ram, 0, PG, DIRTY_MEMORY_VGA));
    /* Turning migration logging on later starts it clean. */
    assert_int_equal(memory_region_set_log(ram, true, DIRTY_MEMORY_MIGRATION), 0);
    memory_region_reset_dirty(ram, 0, 4 * PG, DIRTY_MEMORY_MIGRATION);
    wr_ok(f->as, PG, 4, 1);
    assert_false(memory_region_get_dirty(ram, 0, PG, DIRTY_MEMORY_MIGRATION));
    assert_true(memory_region_get_dirty(ram, PG, PG, DIRTY_MEMORY_MIGRATION));
    assert_true(memory_region_get_dirty(ram, 0, PG, DIRTY_MEMORY_VGA));
    /* Stopping VGA does not touch migration. */
    assert_int_equal(memory_region_set_log(ram, false, DIRTY_MEMORY_VGA), 0);
    assert_true(memory_region_get_dirty(ram, PG, PG, DIRTY_MEMORY_MIGRATION));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fix_setup, fix_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_set_log_mask),      T(test_set_get_reset),      T(test_set_dirty_bitmap),
        T(test_sync_dirty_bitmap), T(test_guest_writes_dirty), T(test_log_only_requested_client),
        T(test_take_dirty),
    };
    return cmocka_run_group_tests_name("memory-dirty", tests, NULL, NULL);
}
