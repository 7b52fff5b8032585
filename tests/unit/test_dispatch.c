/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of dispatch: address_space_read/write, flatview_read/write and
 * memory_region_dispatch_read/write against RAM (across range boundaries),
 * ROM, rom_device, read-only aliases, unassigned space, NULL ops, and
 * ioeventfds matched in userspace dispatch.
 */
#include "unit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* ---- RAM -------------------------------------------------------------- */

static void test_ram_sizes(void **state)
{
    Fix *f = *state;
    MemoryRegion *ram = fx_ram(f, "ram", 0x4000);
    uint8_t *p = memory_region_get_ram_ptr(ram);

    assert_int_equal(memory_region_add_subregion(f->root, 0x100000, ram), 0);
    wr_ok(f->as, 0x100000, 1, 0xa1);
    wr_ok(f->as, 0x100002, 2, 0xb2c3);
    wr_ok(f->as, 0x100004, 4, 0xd4e5f607);
    wr_ok(f->as, 0x100008, 8, 0x0102030405060708ull);
    static const uint8_t want[16] = {
        0xa1, 0x00, 0xc3, 0xb2, 0x07, 0xf6, 0xe5, 0xd4,
        0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
    };
    assert_memory_equal(p, want, sizeof(want));
    assert_int_equal(rd_ok(f->as, 0x100000, 1), 0xa1);
    assert_int_equal(rd_ok(f->as, 0x100002, 2), 0xb2c3);
    assert_int_equal(rd_ok(f->as, 0x100004, 4), 0xd4e5f607);
    assert_int_equal(rd_ok(f->as, 0x100008, 8), 0x0102030405060708ull);
    /* Unaligned RAM accesses are fine. */
    assert_int_equal(rd_ok(f->as, 0x100003, 4), 0xe5f607b2);
    wr_ok(f->as, 0x100101, 8, 0x1122334455667788ull);
    assert_int_equal(rd_ok(f->as, 0x100101, 8), 0x1122334455667788ull);

    /* Long buffers. */
    uint8_t buf[3000], back[3000];
    for (unsigned i = 0; i < sizeof(buf); i++) {
        buf[i] = (uint8_t)(i ^ 0x5c);
    }
    assert_int_equal(address_space_write(f->as, 0x100333, buf, sizeof(buf)), MEMTX_OK);
    assert_memory_equal(p + 0x333, buf, sizeof(buf));
    assert_int_equal(address_space_read(f->as, 0x100333, back, sizeof(back)), MEMTX_OK);
    assert_memory_equal(back, buf, sizeof(buf));
    /* Odd lengths (not 1/2/4/8). */
    assert_int_equal(address_space_write(f->as, 0x101000, buf, 3), MEMTX_OK);
    assert_int_equal(address_space_write(f->as, 0x101010, buf, 7), MEMTX_OK);
    assert_memory_equal(p + 0x1000, buf, 3);
    assert_memory_equal(p + 0x1010, buf, 7);
    assert_int_equal(p[0x1003], 0);
    assert_int_equal(p[0x1017], 0);
}

static void test_ram_across_ranges(void **state)
{
    Fix *f = *state;
    MemoryRegion *a = fx_ram(f, "ra", 0x2000);
    MemoryRegion *b = fx_ram(f, "rb", 0x2000);
    uint8_t *pa = memory_region_get_ram_ptr(a), *pb = memory_region_get_ram_ptr(b);

    assert_int_equal(memory_region_add_subregion(f->root, 0, a), 0);
    assert_int_equal(memory_region_add_subregion(f->root, 0x2000, b), 0);

    uint8_t buf[32], back[32];
    for (unsigned i = 0; i < sizeof(buf); i++) {
        buf[i] = (uint8_t)(0x80 + i);
    }
    assert_int_equal(address_space_write(f->as, 0x1ff0, buf, sizeof(buf)), MEMTX_OK);
    assert_memory_equal(pa + 0x1ff0, buf, 16);
    assert_memory_equal(pb, buf + 16, 16);
    assert_int_equal(address_space_read(f->as, 0x1ff0, back, sizeof(back)), MEMTX_OK);
    assert_memory_equal(back, buf, sizeof(buf));
    /* A single 8-byte access straddling the two. */
    wr_ok(f->as, 0x1ffc, 8, 0x8877665544332211ull);
    assert_int_equal(pa[0x1ffc], 0x11);
    assert_int_equal(pa[0x1fff], 0x44);
    assert_int_equal(pb[0], 0x55);
    assert_int_equal(pb[3], 0x88);
    assert_int_equal(rd_ok(f->as, 0x1ffc, 8), 0x8877665544332211ull);

    /* Through an alias window that starts mid-region. */
    MemoryRegion *al = fx_alias(f, "rwin", b, 0x1000, 0x1000);
    assert_int_equal(memory_region_add_subregion(f->root, 0x10000, al), 0);
    assert_int_equal(address_space_write(f->as, 0xfff8, buf, 16), MEMTX_DECODE_ERROR);
    wr_ok(f->as, 0x10010, 4, 0xcafef00d);
    assert_int_equal(pb[0x1010], 0x0d);
    assert_int_equal(pb[0x1013], 0xca);
}

static void test_ram_then_io(void **state)
{
    Fix *f = *state;
    TestDev dev = { .memlike = true };
    MemoryRegion *ram = fx_ram(f, "ram", 0x1000);
    MemoryRegion *io = fx_io(f, &testdev_ops, &dev, "dev", 0x100);
    uint8_t *p = memory_region_get_ram_ptr(ram);

    assert_int_equal(memory_region_add_subregion(f->root, 0, ram), 0);
    assert_int_equal(memory_region_add_subregion(f->root, 0x1000, io), 0);
    uint8_t buf[16];
    for (unsigned i = 0; i < sizeof(buf); i++) {
        buf[i] = (uint8_t)(i + 1);
    }
    assert_int_equal(address_space_write(f->as, 0xff8, buf, sizeof(buf)), MEMTX_OK);
    assert_memory_equal(p + 0xff8, buf, 8);
    assert_memory_equal(dev.mem, buf + 8, 8);
    uint8_t back[16] = { 0 };
    assert_int_equal(address_space_read(f->as, 0xff8, back, sizeof(back)), MEMTX_OK);
    assert_memory_equal(back, buf, sizeof(buf));
}

static void test_io_through_alias(void **state)
{
    Fix *f = *state;
    TestDev dev = { .memlike = true };
    MemoryRegion *io = fx_io(f, &testdev_ops, &dev, "target", 0x1000);
    MemoryRegion *al = fx_alias(f, "iowin", io, 0x800, 0x100);

    assert_int_equal(memory_region_add_subregion(f->root, 0x5000, al), 0);
    wr_ok(f->as, 0x5010, 4, 0x01020304);
    assert_int_equal(dev.log[0].addr, 0x810);
    assert_int_equal(rd_ok(f->as, 0x5010, 4), 0x01020304);
}

/* ---- ROM, rom_device, readonly ---------------------------------------- */

static void test_rom_writes_dropped(void **state)
{
    Fix *f = *state;
    MemoryRegion *rom = fx_rom(f, "rom", 0x1000);
    uint8_t *p = memory_region_get_ram_ptr(rom);

    memset(p, 0x3c, 0x1000);
    assert_int_equal(memory_region_add_subregion(f->root, 0xf0000, rom), 0);
    (void)as_wr(f->as, 0xf0010, 4, 0xffffffff);
    uint8_t junk[64];
    memset(junk, 0, sizeof(junk));
    (void)address_space_write(f->as, 0xf0100, junk, sizeof(junk));
    for (unsigned i = 0; i < 0x1000; i++) {
        if (p[i] != 0x3c) {
            fail_msg("ROM byte 0x%x was written (0x%x)", i, p[i]);
        }
    }
    assert_int_equal(rd_ok(f->as, 0xf0010, 4), 0x3c3c3c3c);
    FlatView *fv = address_space_get_flatview(f->as);
    assert_true(flatview_lookup(fv, 0xf0000)->readonly);
    flatview_unref(fv);
}

static void test_set_readonly(void **state)
{
    Fix *f = *state;
    MemoryRegion *ram = fx_ram(f, "ram", 0x1000);
    MemoryRegion *al = fx_alias(f, "ro-view", ram, 0, 0x1000);
    uint8_t *p = memory_region_get_ram_ptr(ram);

    assert_int_equal(memory_region_add_subregion(f->root, 0, ram), 0);
    assert_int_equal(memory_region_add_subregion(f->root, 0x10000, al), 0);

    memory_region_set_readonly(ram, true);
    (void)as_wr(f->as, 0x10, 4, 0x12345678);
    (void)as_wr(f->as, 0x10020, 4, 0x12345678);
    assert_int_equal(p[0x10], 0);
    assert_int_equal(p[0x20], 0);
    memory_region_set_readonly(ram, false);
    wr_ok(f->as, 0x10, 4, 0x12345678);
    assert_int_equal(p[0x10], 0x78);

    /* Read-only through the alias only. */
    memory_region_set_readonly(al, true);
    (void)as_wr(f->as, 0x10030, 4, 0xaabbccdd);
    assert_int_equal(p[0x30], 0);
    wr_ok(f->as, 0x30, 4, 0xaabbccdd);
    assert_int_equal(p[0x30], 0xdd);
    assert_int_equal(rd_ok(f->as, 0x10030, 4), 0xaabbccdd);
    FlatView *fv = address_space_get_flatview(f->as);
    assert_false(flatview_lookup(fv, 0x30)->readonly);
    assert_true(flatview_lookup(fv, 0x10030)->readonly);
    flatview_unref(fv);
    assert_int_equal(memory_context_check_flatviews(f->ctx), 0);
}

static void test_rom_device(void **state)
{
    Fix *f = *state;
    TestDev dev = { .read_value = 0xfeedface };
    MemoryRegion *rd = fx_romdev(f, &testdev_ops, &dev, "flash", 0x1000);
    uint8_t *p = memory_region_get_ram_ptr(rd);

    memset(p, 0x42, 0x1000);
    assert_int_equal(memory_region_add_subregion(f->root, 0x80000, rd), 0);

    /* Readable: reads from memory, writes to ops. */
    assert_int_equal(rd_ok(f->as, 0x80010, 4), 0x42424242);
    assert_int_equal(dev.nreads, 0);
    (void)as_wr(f->as, 0x80020, 2, 0x9999);
    assert_int_equal(dev.nwrites, 1);
    assert_int_equal(dev.log[0].addr, 0x20);
    assert_int_equal(dev.log[0].data, 0x9999);
    assert_int_equal(dev.log[0].size, 2);
    assert_int_equal(p[0x20], 0x42);

    /* Not readable: reads go to ops. */
    memory_region_rom_device_set_readable(rd, false);
    assert_false(memory_region_is_romd(rd));
    testdev_reset_log(&dev);
    assert_int_equal(rd_ok(f->as, 0x80010, 4), 0xfeedface);
    assert_int_equal(dev.nreads, 1);
    assert_int_equal(dev.log[0].addr, 0x10);
    FlatView *fv = address_space_get_flatview(f->as);
    assert_false(flatview_lookup(fv, 0x80000)->romd_mode);
    flatview_unref(fv);

    memory_region_rom_device_set_readable(rd, true);
    assert_true(memory_region_is_romd(rd));
    testdev_reset_log(&dev);
    assert_int_equal(rd_ok(f->as, 0x80010, 4), 0x42424242);
    assert_int_equal(dev.nreads, 0);
    fv = address_space_get_flatview(f->as);
    assert_true(flatview_lookup(fv, 0x80000)->romd_mode);
    flatview_unref(fv);
}

/* ---- unassigned, NULL ops --------------------------------------------- */

static void test_unassigned(void **state)
{
    Fix *f = *state;
    MemoryRegion *ram = fx_ram(f, "ram", 0x1000);
    assert_int_equal(memory_region_add_subregion(f->root, 0, ram), 0);

    uint64_t before = address_space_unassigned_count(f->as);
    uint64_t v = 0;
    assert_int_equal(as_rd(f->as, 0x5000, 4, &v), MEMTX_DECODE_ERROR);
    assert_int_equal(v, 0xffffffff);
    assert_int_equal(address_space_unassigned_count(f->as), before + 1);
    assert_int_equal(as_rd(f->as, 0x5000, 8, &v), MEMTX_DECODE_ERROR);
    assert_int_equal(v, UINT64_MAX);
    assert_int_equal(as_rd(f->as, 0x5001, 1, &v), MEMTX_DECODE_ERROR);
    assert_int_equal(v, 0xff);
    assert_int_equal(address_space_unassigned_count(f->as), before + 3);
    assert_int_equal(as_wr(f->as, 0x5000, 4, 0), MEMTX_DECODE_ERROR);
    assert_int_equal(address_space_unassigned_count(f->as), before + 4);

    uint8_t buf[64];
    memset(buf, 0, sizeof(buf));
    assert_int_equal(address_space_read(f->as, 0x7000, buf, sizeof(buf)), MEMTX_DECODE_ERROR);
    for (unsigned i = 0; i < sizeof(buf); i++) {
        assert_int_equal(buf[i], 0xff);
    }
    assert_true(address_space_unassigned_count(f->as) > before + 4);

    /* Partly assigned: the RAM part is read, the rest is all-ones. */
    memset(memory_region_get_ram_ptr(ram), 0x11, 0x1000);
    memset(buf, 0, sizeof(buf));
    assert_int_equal(address_space_read(f->as, 0xff0, buf, 32), MEMTX_DECODE_ERROR);
    for (unsigned i = 0; i < 16; i++) {
        assert_int_equal(buf[i], 0x11);
        assert_int_equal(buf[16 + i], 0xff);
    }
}

static void test_null_ops(void **state)
{
    Fix *f = *state;
    MemoryRegion *io = fx_io(f, NULL, NULL, "noops", 0x100);
    uint64_t v = 0;

    assert_int_equal(memory_region_add_subregion(f->root, 0x1000, io), 0);
    (void)as_rd(f->as, 0x1000, 4, &v);
    assert_int_equal(v, 0xffffffff);
    (void)as_wr(f->as, 0x1000, 4, 0); /* must not crash */
}

/* ---- explicit FlatView / region dispatch ------------------------------ */

static void test_flatview_rw(void **state)
{
    Fix *f = *state;
    MemoryRegion *ram = fx_ram(f, "ram", 0x1000);
    uint8_t *p = memory_region_get_ram_ptr(ram);

    assert_int_equal(memory_region_add_subregion(f->root, 0x4000, ram), 0);
    FlatView *fv = address_space_get_flatview(f->as);
    uint32_t w = 0xa5a5f00d, r = 0;
    assert_int_equal(flatview_write(fv, f->as, 0x4100, &w, 4), MEMTX_OK);
    assert_int_equal(p[0x100], 0x0d);
    assert_int_equal(flatview_read(fv, f->as, 0x4100, &r, 4), MEMTX_OK);
    assert_int_equal(r, w);

    /* An old FlatView keeps dispatching to what it showed. */
    assert_int_equal(memory_region_set_address(ram, 0x8000), 0);
    r = 0;
    assert_int_equal(flatview_read(fv, f->as, 0x4100, &r, 4), MEMTX_OK);
    assert_int_equal(r, w);
    flatview_unref(fv);
    assert_int_equal(rd_ok(f->as, 0x8100, 4), w);
}

static void test_region_dispatch(void **state)
{
    Fix *f = *state;
    TestDev dev = { .memlike = true };
    MemoryRegion *io = fx_io(f, &testdev_ops, &dev, "direct", 0x100);
    uint64_t v = 0;

    /* Works on an unmapped region. */
    assert_int_equal(memory_region_dispatch_write(io, 0x10, 0x1122334455667788ull, 8), MEMTX_OK);
    assert_int_equal(memory_region_dispatch_read(io, 0x10, &v, 8), MEMTX_OK);
    assert_int_equal(v, 0x1122334455667788ull);
    assert_int_equal(memory_region_dispatch_read(io, 0x12, &v, 2), MEMTX_OK);
    assert_int_equal(v, 0x5566);
    assert_int_equal(dev.nwrites, 1);
    assert_int_equal(dev.nreads, 2);
}

/* ---- ioeventfd in userspace dispatch --------------------------------- */

static uint64_t efd_take(int fd)
{
    uint64_t c = 0;
    if (read(fd, &c, sizeof(c)) != (ssize_t)sizeof(c)) {
        return 0;
    }
    return c;
}

static void test_ioeventfd_dispatch(void **state)
{
    Fix *f = *state;
    TestDev dev = { .memlike = true };
    MemoryRegion *io = fx_io(f, &testdev_ops, &dev, "notify", 0x100);
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    int any = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd < 0 || any < 0) {
        skip();
    }

    assert_int_equal(memory_region_add_subregion(f->root, 0x9000, io), 0);
    assert_int_equal(memory_region_add_eventfd(io, 0x10, 4, true, 0x42, efd), 0);
    assert_int_equal(memory_region_add_eventfd(io, 0x10, 4, true, 0x42, efd), -EEXIST);
    assert_int_equal(memory_region_add_eventfd(io, 0x20, 2, false, 0, any), 0);

    wr_ok(f->as, 0x9010, 4, 0x42);
    assert_int_equal(efd_take(efd), 1);
    assert_int_equal(dev.nwrites, 0);

    wr_ok(f->as, 0x9010, 4, 0x43); /* data does not match */
    assert_int_equal(efd_take(efd), 0);
    assert_int_equal(dev.nwrites, 1);
    wr_ok(f->as, 0x9010, 2, 0x42); /* size does not match */
    assert_int_equal(efd_take(efd), 0);
    assert_int_equal(dev.nwrites, 2);

    wr_ok(f->as, 0x9020, 2, 0x1234); /* any data */
    wr_ok(f->as, 0x9020, 2, 0x5678);
    assert_int_equal(efd_take(any), 2);
    assert_int_equal(dev.nwrites, 2);
    (void)rd_ok(f->as, 0x9020, 2); /* reads still reach ops */
    assert_int_equal(dev.nreads, 1);

    assert_int_equal(memory_region_del_eventfd(io, 0x10, 4, true, 0x42, efd), 0);
    assert_int_equal(memory_region_del_eventfd(io, 0x10, 4, true, 0x42, efd), -ENOENT);
    assert_int_equal(memory_region_del_eventfd(io, 0x20, 2, true, 0, any), -ENOENT);
    wr_ok(f->as, 0x9010, 4, 0x42);
    assert_int_equal(efd_take(efd), 0);
    assert_int_equal(dev.nwrites, 3);
    assert_int_equal(memory_region_del_eventfd(io, 0x20, 2, false, 0, any), 0);
    close(efd);
    close(any);
}

static void test_edge_lengths(void **state)
{
    Fix *f = *state;
    TestDev dev = { .memlike = true };
    MemoryRegion *io = fx_io(f, &testdev_ops, &dev, "edge", 0x100);
    MemoryRegion *top = fx_ram(f, "top", 0x1000);
    uint8_t buf[16] = { 0 };

    assert_int_equal(memory_region_add_subregion(f->root, 0x1000, io), 0);
    assert_int_equal(memory_region_add_subregion(f->root, 0xfffffffffffff000ull, top), 0);
    /* Zero length: nothing happens. */
    assert_int_equal(address_space_read(f->as, 0x1000, buf, 0), MEMTX_OK);
    assert_int_equal(address_space_write(f->as, 0x1000, buf, 0), MEMTX_OK);
    assert_int_equal(dev.ncalls, 0);
    /* Running off the end of the 64-bit space must not wrap to 0 or crash. */
    memset(buf, 0x5a, sizeof(buf));
    (void)address_space_write(f->as, UINT64_MAX - 3, buf, sizeof(buf));
    uint8_t *p = memory_region_get_ram_ptr(top);
    assert_int_equal(p[0xffc], 0x5a);
    assert_int_equal(p[0xfff], 0x5a);
    (void)address_space_read(f->as, UINT64_MAX - 3, buf, sizeof(buf));
    assert_int_equal(dev.ncalls, 0);
}

static void test_alias_past_target_end(void **state)
{
    Fix *f = *state;
    MemoryRegion *ram = fx_ram(f, "short", 0x1000);
    MemoryRegion *al = fx_slot(f);

    /* QEMU allows an alias window that runs past its target: only the part
     * that exists is shown. strata may refuse it instead. */
    if (memory_region_init_alias(al, f->ctx, "longwin", ram, 0x800, 0x1000) != 0) {
        assert_string_not_equal(memory_context_last_error(f->ctx), "");
        return;
    }
    fx_live(f, al);
    assert_int_equal(memory_region_add_subregion(f->root, 0x10000, al), 0);
    ExpRange e[] = { { .start = 0x10000, .size = 0x800, .mr = ram, .offset = 0x800 } };
    expect_flatview(f->as, e, 1);
    uint64_t v;
    assert_int_equal(as_rd(f->as, 0x10800, 4, &v), MEMTX_DECODE_ERROR);
}

static void test_ioeventfd_through_alias(void **state)
{
    Fix *f = *state;
    TestDev dev = { .memlike = true };
    MemoryRegion *io = fx_io(f, &testdev_ops, &dev, "notify", 0x1000);
    MemoryRegion *al = fx_alias(f, "notify-win", io, 0x800, 0x100);
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd < 0) {
        skip();
    }
    assert_int_equal(memory_region_add_eventfd(io, 0x810, 4, true, 7, efd), 0);
    assert_int_equal(memory_region_add_subregion(f->root, 0x50000, al), 0);
    wr_ok(f->as, 0x50010, 4, 7);
    assert_int_equal(efd_take(efd), 1);
    assert_int_equal(dev.nwrites, 0);
    wr_ok(f->as, 0x50010, 4, 8);
    assert_int_equal(dev.nwrites, 1);
    assert_int_equal(dev.log[0].addr, 0x810);
    assert_int_equal(memory_region_del_eventfd(io, 0x810, 4, true, 7, efd), 0);
    close(efd);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fix_setup, fix_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_ram_sizes),
        T(test_ram_across_ranges),
        T(test_ram_then_io),
        T(test_io_through_alias),
        T(test_rom_writes_dropped),
        T(test_set_readonly),
        T(test_rom_device),
        T(test_unassigned),
        T(test_null_ops),
        T(test_flatview_rw),
        T(test_region_dispatch),
        T(test_ioeventfd_dispatch),
        T(test_edge_lengths),
        T(test_alias_past_target_end),
        T(test_ioeventfd_through_alias),
    };
    return cmocka_run_group_tests_name("memory-dispatch", tests, NULL, NULL);
}
