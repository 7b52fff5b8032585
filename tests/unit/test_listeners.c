/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of transactions and listeners: replay on registration, nested
 * transactions, one begin/commit per outermost commit, only what changed
 * (add/del/nop), log_start/log_stop, eventfd and coalesced notifications.
 */
#include "unit.h"

#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Listeners live in static storage: if a test fails half way, teardown's
 * address_space_destroy may still call them. */
static Rec rec, rec2;

static void expect_clean(const Rec *r)
{
    if (r->outside || r->unbalanced || r->depth != 0) {
        rec_dump(r);
        fail_msg("listener callbacks outside begin/commit: %u, unbalanced: %u, depth %d",
                 r->outside, r->unbalanced, r->depth);
    }
}

#define ANY (~0u) /* expect_counts: any number of region_nop */

/* Asserts the numbers of begin/commit/add/del/nop calls (nop may be ANY). */
static void expect_counts(const Rec *r, unsigned begin, unsigned commit, unsigned add, unsigned del,
                          unsigned nop)
{
    if (r->n[EV_BEGIN] != begin || r->n[EV_COMMIT] != commit || r->n[EV_ADD] != add ||
        r->n[EV_DEL] != del || (nop != ANY && r->n[EV_NOP] != nop)) {
        rec_dump(r);
        fail_msg("expected begin %u commit %u add %u del %u nop %u; got %u %u %u %u %u", begin,
                 commit, add, del, nop, r->n[EV_BEGIN], r->n[EV_COMMIT], r->n[EV_ADD], r->n[EV_DEL],
                 r->n[EV_NOP]);
    }
    expect_clean(r);
}

static const RecEvent *find_ev(const Rec *r, enum RecKind k, const MemoryRegion *mr)
{
    for (unsigned i = 0; i < r->nev; i++) {
        if (r->ev[i].kind == k && r->ev[i].mr == mr) {
            return &r->ev[i];
        }
    }
    rec_dump(r);
    fail_msg("no event of kind %d for %s", (int)k, mr ? memory_region_name(mr) : "-");
    return NULL;
}

static void test_register_replays(void **state)
{
    Fix *f = *state;
    MemoryRegion *a = fx_ram(f, "a", 0x1000);
    MemoryRegion *b = fx_ram(f, "b", 0x2000);
    MemoryRegion *al = fx_alias(f, "bwin", b, 0x1000, 0x1000);

    assert_int_equal(memory_region_add_subregion(f->root, 0x1000, a), 0);
    assert_int_equal(memory_region_add_subregion(f->root, 0x4000, b), 0);
    assert_int_equal(memory_region_add_subregion(f->root, 0x10000, al), 0);
    rec_init(&rec);
    memory_listener_register(&rec.l, f->as);
    expect_counts(&rec, 1, 1, 3, 0, 0);
    const RecEvent *e = find_ev(&rec, EV_ADD, a);
    assert_int_equal(e->start, 0x1000);
    assert_true(e->size == (Int128)0x1000);
    assert_int_equal(e->offset, 0);
    assert_ptr_equal(e->as, f->as);
    assert_false(e->readonly);
    /* The alias shows as b at offset 0x1000. */
    unsigned nb = rec_count_mr(&rec, EV_ADD, b);
    assert_int_equal(nb, 2);
    bool seen = false;
    for (unsigned i = 0; i < rec.nev; i++) {
        if (rec.ev[i].kind == EV_ADD && rec.ev[i].start == 0x10000) {
            assert_ptr_equal(rec.ev[i].mr, b);
            assert_int_equal(rec.ev[i].offset, 0x1000);
            assert_true(rec.ev[i].size == (Int128)0x1000);
            seen = true;
        }
    }
    assert_true(seen);
    memory_listener_unregister(&rec.l);

    /* After unregister: silence. */
    rec_reset(&rec);
    memory_region_set_enabled(a, false);
    expect_counts(&rec, 0, 0, 0, 0, 0);
}

static void test_nested_transactions(void **state)
{
    Fix *f = *state;
    MemoryRegion *r1 = fx_ram(f, "r1", 0x1000);
    MemoryRegion *r2 = fx_ram(f, "r2", 0x1000);
    MemoryRegion *r3 = fx_ram(f, "r3", 0x1000);

    assert_int_equal(memory_region_add_subregion(f->root, 0, r1), 0);
    rec_init(&rec);
    memory_listener_register(&rec.l, f->as);
    rec_reset(&rec);

    memory_region_transaction_begin(f->ctx);
    memory_region_transaction_begin(f->ctx);
    assert_int_equal(memory_region_add_subregion(f->root, 0x1000, r2), 0);
    memory_region_set_enabled(r1, false);
    memory_region_transaction_commit(f->ctx);
    /* Inner commit: nothing told, nothing visible. */
    expect_counts(&rec, 0, 0, 0, 0, 0);
    assert_int_equal(fv_count(f->as), 1);
    uint64_t v;
    assert_int_equal(as_rd(f->as, 0x1000, 4, &v), MEMTX_DECODE_ERROR);
    assert_int_equal(memory_region_add_subregion(f->root, 0x2000, r3), 0);
    memory_region_transaction_begin(f->ctx);
    memory_region_set_enabled(r1, true);
    memory_region_set_enabled(r1, false);
    memory_region_transaction_commit(f->ctx);
    expect_counts(&rec, 0, 0, 0, 0, 0);
    memory_region_transaction_commit(f->ctx);

    /* Outermost commit: one begin/commit pair, r1 gone, r2 and r3 added. */
    expect_counts(&rec, 1, 1, 2, 1, 0);
    assert_int_equal(rec_count_mr(&rec, EV_DEL, r1), 1);
    assert_int_equal(rec_count_mr(&rec, EV_ADD, r2), 1);
    assert_int_equal(rec_count_mr(&rec, EV_ADD, r3), 1);
    /* del comes before add. */
    assert_int_equal(rec.ev[0].kind, EV_BEGIN);
    assert_int_equal(rec.ev[1].kind, EV_DEL);
    assert_int_equal(rec.ev[rec.nev - 1].kind, EV_COMMIT);
    assert_int_equal(fv_count(f->as), 2);
    assert_int_equal(rd_ok(f->as, 0x1000, 4), 0);
    assert_int_equal(memory_context_check_flatviews(f->ctx), 0);
}

static void test_empty_commit(void **state)
{
    Fix *f = *state;
    MemoryRegion *r1 = fx_ram(f, "r1", 0x1000);

    assert_int_equal(memory_region_add_subregion(f->root, 0, r1), 0);
    rec_init(&rec);
    memory_listener_register(&rec.l, f->as);
    rec_reset(&rec);
    memory_region_transaction_begin(f->ctx);
    memory_region_transaction_commit(f->ctx);
    memory_region_set_enabled(r1, true); /* already enabled */
    assert_int_equal(rec.n[EV_ADD], 0);
    assert_int_equal(rec.n[EV_DEL], 0);
    assert_int_equal(rec.n[EV_BEGIN], rec.n[EV_COMMIT]);
    expect_clean(&rec);
    /* A change undone inside one transaction changes nothing. */
    rec_reset(&rec);
    memory_region_transaction_begin(f->ctx);
    memory_region_set_enabled(r1, false);
    memory_region_set_enabled(r1, true);
    memory_region_transaction_commit(f->ctx);
    assert_int_equal(rec.n[EV_ADD], 0);
    assert_int_equal(rec.n[EV_DEL], 0);
    expect_clean(&rec);
    memory_listener_unregister(&rec.l);
}

static void test_toggle_one_of_many(void **state)
{
    Fix *f = *state;
    TestDev dev = { 0 };
    MemoryRegion *r[8];
    char name[8];

    for (int i = 0; i < 8; i++) {
        snprintf(name, sizeof(name), "dev%d", i);
        r[i] = fx_io(f, &testdev_ops, &dev, name, 0x100);
        assert_int_equal(memory_region_add_subregion(f->root, (uint64_t)i * 0x1000, r[i]), 0);
    }
    rec_init(&rec);
    memory_listener_register(&rec.l, f->as);
    expect_counts(&rec, 1, 1, 8, 0, 0);
    rec_reset(&rec);

    /* Only the matching del: the seven others did not change, so they are
     * not mentioned at all (strata tells listeners only what changed). */
    memory_region_set_enabled(r[3], false);
    expect_counts(&rec, 1, 1, 0, 1, 0);
    const RecEvent *e = find_ev(&rec, EV_DEL, r[3]);
    assert_int_equal(e->start, 0x3000);
    assert_true(e->size == (Int128)0x100);

    rec_reset(&rec);
    memory_region_set_enabled(r[3], true);
    expect_counts(&rec, 1, 1, 1, 0, 0);
    e = find_ev(&rec, EV_ADD, r[3]);
    assert_int_equal(e->start, 0x3000);
    assert_true(e->size == (Int128)0x100);
    assert_int_equal(e->offset, 0);

    /* Moving one: del at the old place, add at the new one. */
    rec_reset(&rec);
    assert_int_equal(memory_region_set_address(r[5], 0x20000), 0);
    expect_counts(&rec, 1, 1, 1, 1, 0);
    assert_int_equal(find_ev(&rec, EV_DEL, r[5])->start, 0x5000);
    assert_int_equal(find_ev(&rec, EV_ADD, r[5])->start, 0x20000);

    /* Covering one partly with a higher-priority region. */
    MemoryRegion *cover = fx_ram(f, "cover", 0x800); /* 0x1080-0x187f */
    rec_reset(&rec);
    assert_int_equal(memory_region_add_subregion_overlap(f->root, 0x1080, cover, 1), 0);
    assert_int_equal(rec_count_mr(&rec, EV_DEL, r[1]), 1);
    assert_int_equal(rec_count_mr(&rec, EV_ADD, r[1]), 1);
    assert_int_equal(rec_count_mr(&rec, EV_ADD, cover), 1);
    assert_int_equal(find_ev(&rec, EV_ADD, r[1])->size, 0x80);
    assert_int_equal(rec.n[EV_DEL], 1);
    assert_int_equal(rec.n[EV_ADD], 2);
    expect_clean(&rec);
    memory_listener_unregister(&rec.l);
    assert_int_equal(memory_context_check_flatviews(f->ctx), 0);
}

static void test_readonly_romd_changes(void **state)
{
    Fix *f = *state;
    TestDev dev = { 0 };
    MemoryRegion *ram = fx_ram(f, "ram", 0x1000);
    MemoryRegion *rd = fx_romdev(f, &testdev_ops, &dev, "flash", 0x1000);

    assert_int_equal(memory_region_add_subregion(f->root, 0, ram), 0);
    assert_int_equal(memory_region_add_subregion(f->root, 0x10000, rd), 0);
    rec_init(&rec);
    memory_listener_register(&rec.l, f->as);
    assert_true(find_ev(&rec, EV_ADD, rd)->romd);
    rec_reset(&rec);

    memory_region_set_readonly(ram, true);
    expect_counts(&rec, 1, 1, 1, 1, 0);
    assert_false(find_ev(&rec, EV_DEL, ram)->readonly);
    assert_true(find_ev(&rec, EV_ADD, ram)->readonly);

    rec_reset(&rec);
    memory_region_rom_device_set_readable(rd, false);
    expect_counts(&rec, 1, 1, 1, 1, 0);
    assert_true(find_ev(&rec, EV_DEL, rd)->romd);
    assert_false(find_ev(&rec, EV_ADD, rd)->romd);
    memory_listener_unregister(&rec.l);
}

static void test_log_start_stop(void **state)
{
    Fix *f = *state;
    MemoryRegion *ram = fx_ram(f, "vram", 0x4000);
    MemoryRegion *other = fx_ram(f, "other", 0x1000);

    assert_int_equal(memory_region_add_subregion(f->root, 0xa0000, ram), 0);
    assert_int_equal(memory_region_add_subregion(f->root, 0, other), 0);
    rec_init(&rec);
    memory_listener_register(&rec.l, f->as);
    rec_reset(&rec);

    assert_int_equal(memory_region_set_log(ram, true, DIRTY_MEMORY_VGA), 0);
    assert_int_equal(rec.n[EV_LOG_START], 1);
    assert_int_equal(rec.n[EV_LOG_STOP], 0);
    assert_int_equal(rec.n[EV_ADD], 0);
    assert_int_equal(rec.n[EV_DEL], 0);
    if (rec_count_mr(&rec, EV_NOP, ram) != 0) {
        rec_dump(&rec);
        fail_msg("region_nop was called for vram although its dirty-log mask changed "
                 "(memory.h: \"nop only if nothing about them changed\")");
    }
    const RecEvent *e = find_ev(&rec, EV_LOG_START, ram);
    assert_int_equal(e->old_mask, 0);
    assert_int_equal(e->new_mask, 1 << DIRTY_MEMORY_VGA);
    assert_int_equal(e->start, 0xa0000);
    assert_true(e->size == (Int128)0x4000);
    expect_clean(&rec);

    rec_reset(&rec);
    assert_int_equal(memory_region_set_log(ram, true, DIRTY_MEMORY_MIGRATION), 0);
    e = find_ev(&rec, EV_LOG_START, ram);
    assert_int_equal(e->old_mask, 1 << DIRTY_MEMORY_VGA);
    assert_int_equal(e->new_mask, (1 << DIRTY_MEMORY_VGA) | (1 << DIRTY_MEMORY_MIGRATION));
    assert_int_equal(rec.n[EV_LOG_STOP], 0);

    rec_reset(&rec);
    assert_int_equal(memory_region_set_log(ram, false, DIRTY_MEMORY_VGA), 0);
    assert_int_equal(rec.n[EV_LOG_START], 0);
    assert_int_equal(rec.n[EV_LOG_STOP], 1);
    e = find_ev(&rec, EV_LOG_STOP, ram);
    assert_int_equal(e->old_mask, (1 << DIRTY_MEMORY_VGA) | (1 << DIRTY_MEMORY_MIGRATION));
    assert_int_equal(e->new_mask, 1 << DIRTY_MEMORY_MIGRATION);
    assert_int_equal(rec.n[EV_ADD], 0);
    assert_int_equal(rec.n[EV_DEL], 0);
    expect_clean(&rec);

    /* Asking again for what is already on tells nothing. */
    rec_reset(&rec);
    assert_int_equal(memory_region_set_log(ram, true, DIRTY_MEMORY_MIGRATION), 0);
    assert_int_equal(rec.n[EV_LOG_START], 0);
    assert_int_equal(rec.n[EV_LOG_STOP], 0);
    assert_int_equal(rec.n[EV_ADD] + rec.n[EV_DEL], 0);
    memory_listener_unregister(&rec.l);
}

static void test_eventfd_listener(void **state)
{
    Fix *f = *state;
    TestDev dev = { 0 };
    MemoryRegion *io = fx_io(f, &testdev_ops, &dev, "doorbell", 0x100);
    MemoryRegion *later = fx_io(f, &testdev_ops, &dev, "later", 0x100);
    MemoryRegion *unrelated = fx_ram(f, "unrelated", 0x1000);
    int fd = eventfd(0, EFD_CLOEXEC), fd2 = eventfd(0, EFD_CLOEXEC);
    if (fd < 0 || fd2 < 0) {
        skip();
    }

    assert_int_equal(memory_region_add_subregion(f->root, 0x9000, io), 0);
    rec_init(&rec);
    memory_listener_register(&rec.l, f->as);
    rec_reset(&rec);

    assert_int_equal(memory_region_add_eventfd(io, 0x10, 4, true, 0x42, fd), 0);
    assert_int_equal(rec.n[EV_EVENTFD_ADD], 1);
    assert_int_equal(rec.n[EV_EVENTFD_DEL], 0);
    const RecEvent *e = find_ev(&rec, EV_EVENTFD_ADD, io);
    assert_int_equal(e->start, 0x9010);
    assert_true(e->size == (Int128)4);
    assert_true(e->match_data);
    assert_int_equal(e->data, 0x42);
    assert_int_equal(e->fd, fd);
    assert_int_equal(rec.n[EV_ADD] + rec.n[EV_DEL], 0);

    /* Unrelated changes do not touch eventfds. */
    rec_reset(&rec);
    assert_int_equal(memory_region_add_subregion(f->root, 0x20000, unrelated), 0);
    assert_int_equal(rec.n[EV_EVENTFD_ADD] + rec.n[EV_EVENTFD_DEL], 0);

    /* An eventfd of an unmapped region is told when it is mapped, at the
     * right address, and withdrawn when it is unmapped or moved. */
    rec_reset(&rec);
    assert_int_equal(memory_region_add_eventfd(later, 0x4, 2, false, 0, fd2), 0);
    assert_int_equal(rec.n[EV_EVENTFD_ADD], 0);
    assert_int_equal(memory_region_add_subregion(f->root, 0xa000, later), 0);
    assert_int_equal(rec.n[EV_EVENTFD_ADD], 1);
    e = find_ev(&rec, EV_EVENTFD_ADD, later);
    assert_int_equal(e->start, 0xa004);
    assert_true(e->size == (Int128)2);
    assert_false(e->match_data);
    assert_int_equal(e->fd, fd2);

    rec_reset(&rec);
    assert_int_equal(memory_region_set_address(later, 0xb000), 0);
    assert_int_equal(rec.n[EV_EVENTFD_DEL], 1);
    assert_int_equal(rec.n[EV_EVENTFD_ADD], 1);
    assert_int_equal(find_ev(&rec, EV_EVENTFD_DEL, later)->start, 0xa004);
    assert_int_equal(find_ev(&rec, EV_EVENTFD_ADD, later)->start, 0xb004);

    rec_reset(&rec);
    assert_int_equal(memory_region_del_subregion(f->root, later), 0);
    assert_int_equal(rec.n[EV_EVENTFD_DEL], 1);
    assert_int_equal(rec.n[EV_EVENTFD_ADD], 0);
    assert_int_equal(memory_region_del_eventfd(later, 0x4, 2, false, 0, fd2), 0);

    rec_reset(&rec);
    assert_int_equal(memory_region_del_eventfd(io, 0x10, 4, true, 0x42, fd), 0);
    assert_int_equal(rec.n[EV_EVENTFD_DEL], 1);
    e = find_ev(&rec, EV_EVENTFD_DEL, io);
    assert_int_equal(e->start, 0x9010);
    assert_int_equal(e->data, 0x42);
    assert_int_equal(e->fd, fd);
    memory_listener_unregister(&rec.l);
    close(fd);
    close(fd2);
}

static bool covers(const Rec *r, enum RecKind k, uint64_t addr, uint64_t len)
{
    for (unsigned i = 0; i < r->nev; i++) {
        const RecEvent *e = &r->ev[i];
        if (e->kind == k && e->addr <= addr && e->addr + e->len >= addr + len) {
            return true;
        }
    }
    return false;
}

static bool exact(const Rec *r, enum RecKind k, uint64_t addr, uint64_t len)
{
    for (unsigned i = 0; i < r->nev; i++) {
        const RecEvent *e = &r->ev[i];
        if (e->kind == k && e->addr == addr && e->len == len) {
            return true;
        }
    }
    return false;
}

static void test_coalesced_listener(void **state)
{
    Fix *f = *state;
    TestDev dev = { 0 };
    MemoryRegion *io = fx_io(f, &testdev_ops, &dev, "nic", 0x1000);

    assert_int_equal(memory_region_add_subregion(f->root, 0x40000, io), 0);
    rec_init(&rec);
    memory_listener_register(&rec.l, f->as);
    rec_reset(&rec);

    assert_int_equal(memory_region_set_coalescing(io), 0);
    if (!exact(&rec, EV_COALESCED_ADD, 0x40000, 0x1000)) {
        rec_dump(&rec);
        fail_msg("set_coalescing: no coalesced_add(0x40000, 0x1000)");
    }
    assert_int_equal(rec.n[EV_ADD] + rec.n[EV_DEL], 0);

    rec_reset(&rec);
    memory_region_clear_coalescing(io);
    if (!covers(&rec, EV_COALESCED_DEL, 0x40000, 0x1000)) {
        rec_dump(&rec);
        fail_msg("clear_coalescing: no coalesced_del covering the region");
    }
    assert_int_equal(rec.n[EV_COALESCED_ADD], 0);

    rec_reset(&rec);
    assert_int_equal(memory_region_add_coalescing(io, 0x100, 0x10), 0);
    assert_int_equal(memory_region_add_coalescing(io, 0x400, 0x200), 0);
    if (!exact(&rec, EV_COALESCED_ADD, 0x40100, 0x10) ||
        !exact(&rec, EV_COALESCED_ADD, 0x40400, 0x200)) {
        rec_dump(&rec);
        fail_msg("add_coalescing: zones (0x40100,0x10) and (0x40400,0x200) not both added");
    }
    /* Every added zone lies inside the region. */
    for (unsigned i = 0; i < rec.nev; i++) {
        if (rec.ev[i].kind == EV_COALESCED_ADD) {
            assert_true(rec.ev[i].addr >= 0x40000);
            assert_true(rec.ev[i].addr + rec.ev[i].len <= 0x41000);
        }
    }

    /* Unmapping withdraws them. */
    rec_reset(&rec);
    assert_int_equal(memory_region_del_subregion(f->root, io), 0);
    if (!covers(&rec, EV_COALESCED_DEL, 0x40100, 0x10) ||
        !covers(&rec, EV_COALESCED_DEL, 0x40400, 0x200)) {
        rec_dump(&rec);
        fail_msg("unmapping a coalesced region did not withdraw its zones");
    }
    memory_region_clear_coalescing(io);
    memory_listener_unregister(&rec.l);
}

static void test_address_space_destroy_tells(void **state)
{
    Fix *f = *state;
    MemoryRegion *box = fx_container(f, "box", 0x100000);
    MemoryRegion *a = fx_ram(f, "a", 0x1000);
    MemoryRegion *b = fx_ram(f, "b", 0x1000);

    assert_int_equal(memory_region_add_subregion(box, 0, a), 0);
    assert_int_equal(memory_region_add_subregion(box, 0x8000, b), 0);
    AddressSpace *as = fx_as(f, box, "dma");
    rec_init(&rec);
    memory_listener_register(&rec.l, as);
    expect_counts(&rec, 1, 1, 2, 0, 0);
    rec_reset(&rec);
    fx_as_destroy(f, as);
    assert_int_equal(rec.n[EV_DEL], 2);
    assert_int_equal(rec_count_mr(&rec, EV_DEL, a), 1);
    assert_int_equal(rec_count_mr(&rec, EV_DEL, b), 1);
    assert_int_equal(rec.n[EV_ADD], 0);
}

static void test_other_address_space_silent(void **state)
{
    Fix *f = *state;
    MemoryRegion *io = fx_container(f, "io", 0x10000);
    MemoryRegion *port = fx_ram(f, "port", 0x10);
    MemoryRegion *ram = fx_ram(f, "ram", 0x1000);
    AddressSpace *ioas = fx_as(f, io, "I/O");

    assert_int_equal(memory_region_add_subregion(f->root, 0, ram), 0);
    rec_init(&rec);
    rec_init(&rec2);
    memory_listener_register(&rec.l, f->as);
    memory_listener_register(&rec2.l, ioas);
    rec_reset(&rec);
    rec_reset(&rec2);

    assert_int_equal(memory_region_add_subregion(io, 0x60, port), 0);
    assert_int_equal(rec.n[EV_ADD] + rec.n[EV_DEL], 0);
    assert_int_equal(rec2.n[EV_ADD], 1);
    assert_int_equal(find_ev(&rec2, EV_ADD, port)->start, 0x60);
    assert_ptr_equal(find_ev(&rec2, EV_ADD, port)->as, ioas);
    expect_clean(&rec);
    expect_clean(&rec2);
    memory_listener_unregister(&rec2.l);
    memory_listener_unregister(&rec.l);
}

/* Two address spaces sharing one FlatView: each listener is told about its
 * own address space. */
static void test_shared_flatview_listeners(void **state)
{
    Fix *f = *state;
    MemoryRegion *a = fx_ram(f, "a", 0x1000);
    MemoryRegion *b = fx_ram(f, "b", 0x1000);
    AddressSpace *as2 = fx_as(f, f->root, "cpu-memory");

    assert_int_equal(memory_region_add_subregion(f->root, 0, a), 0);
    rec_init(&rec);
    rec_init(&rec2);
    memory_listener_register(&rec.l, f->as);
    memory_listener_register(&rec2.l, as2);
    rec_reset(&rec);
    rec_reset(&rec2);
    /* (The FlatView root changes from a to system here, so a region_nop
     * for a is allowed.) */
    assert_int_equal(memory_region_add_subregion(f->root, 0x4000, b), 0);
    expect_counts(&rec, 1, 1, 1, 0, ANY);
    expect_counts(&rec2, 1, 1, 1, 0, ANY);
    assert_ptr_equal(find_ev(&rec, EV_ADD, b)->as, f->as);
    assert_ptr_equal(find_ev(&rec2, EV_ADD, b)->as, as2);

    /* One of them goes away; the other keeps working and being told. */
    memory_listener_unregister(&rec2.l);
    fx_as_destroy(f, as2);
    rec_reset(&rec);
    memory_region_set_enabled(a, false);
    expect_counts(&rec, 1, 1, 0, 1, ANY);
    assert_int_equal(rd_ok(f->as, 0x4000, 4), 0);
    memory_listener_unregister(&rec.l);
}

static void test_eventfd_listener_through_alias(void **state)
{
    Fix *f = *state;
    TestDev dev = { 0 };
    MemoryRegion *io = fx_io(f, &testdev_ops, &dev, "regs", 0x1000);
    MemoryRegion *al = fx_alias(f, "regs-win", io, 0x800, 0x100);

    rec_init(&rec);
    memory_listener_register(&rec.l, f->as);
    assert_int_equal(memory_region_add_eventfd(io, 0x810, 4, false, 0, 11), 0);
    assert_int_equal(memory_region_add_eventfd(io, 0x010, 4, false, 0, 12), 0);
    assert_int_equal(rec.n[EV_EVENTFD_ADD], 0); /* nothing mapped */
    assert_int_equal(memory_region_add_subregion(f->root, 0x50000, al), 0);
    /* Only the one inside the window, at its guest address. */
    if (rec.n[EV_EVENTFD_ADD] != 1) {
        rec_dump(&rec);
        fail_msg("expected 1 eventfd_add, got %u", rec.n[EV_EVENTFD_ADD]);
    }
    const RecEvent *e = find_ev(&rec, EV_EVENTFD_ADD, io);
    assert_int_equal(e->start, 0x50010);
    assert_int_equal(e->fd, 11);
    rec_reset(&rec);
    assert_int_equal(memory_region_del_subregion(f->root, al), 0);
    assert_int_equal(rec.n[EV_EVENTFD_DEL], 1);
    assert_int_equal(memory_region_del_eventfd(io, 0x810, 4, false, 0, 11), 0);
    assert_int_equal(memory_region_del_eventfd(io, 0x010, 4, false, 0, 12), 0);
    memory_listener_unregister(&rec.l);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fix_setup, fix_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_register_replays),
        T(test_nested_transactions),
        T(test_empty_commit),
        T(test_toggle_one_of_many),
        T(test_readonly_romd_changes),
        T(test_log_start_stop),
        T(test_eventfd_listener),
        T(test_coalesced_listener),
        T(test_address_space_destroy_tells),
        T(test_other_address_space_silent),
        T(test_shared_flatview_listeners),
        T(test_eventfd_listener_through_alias),
    };
    return cmocka_run_group_tests_name("memory-listeners", tests, NULL, NULL);
}
