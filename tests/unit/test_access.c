/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of I/O access rules in dispatch: 1/2/4/8-byte and long
 * accesses, ops->valid rejection (MEMTX_ERROR, device not called),
 * ops->impl splitting and widening, big-endian devices, the legacy offset.
 */
#include "unit.h"

#include <string.h>

static void fill_pattern(TestDev *d)
{
    for (unsigned i = 0; i < TESTDEV_MEM; i++) {
        d->mem[i] = (uint8_t)(i * 7 + 3);
    }
}

/* ---- I/O: sizes, valid, impl ----------------------------------------- */

static void test_io_sizes_and_long(void **state)
{
    Fix *f = *state;
    TestDev dev = { .memlike = true };
    MemoryRegion *io = fx_io(f, &testdev_ops, &dev, "dev", 0x100);

    assert_int_equal(memory_region_add_subregion(f->root, 0x3000, io), 0);
    for (unsigned sz = 1; sz <= 8; sz *= 2) {
        uint64_t v = 0x8877665544332211ull & (sz == 8 ? ~0ull : ((1ull << (8 * sz)) - 1));
        testdev_reset_log(&dev);
        wr_ok(f->as, 0x3010, sz, v);
        assert_int_equal(dev.nwrites, 1);
        assert_int_equal(dev.log[0].addr, 0x10);
        assert_int_equal(dev.log[0].size, sz);
        assert_int_equal(dev.log[0].data, v);
        testdev_reset_log(&dev);
        assert_int_equal(rd_ok(f->as, 0x3010, sz), v);
        assert_int_equal(dev.nreads, 1);
        assert_int_equal(dev.log[0].size, sz);
    }

    /* A 40-byte buffer: every byte lands at its address, every call is a
     * size the device accepts, and nothing outside is touched. */
    uint8_t buf[40], back[40];
    for (unsigned i = 0; i < sizeof(buf); i++) {
        buf[i] = (uint8_t)(0xc0 ^ i);
    }
    memset(dev.mem, 0xee, sizeof(dev.mem));
    testdev_reset_log(&dev);
    assert_int_equal(address_space_write(f->as, 0x3021, buf, sizeof(buf)), MEMTX_OK);
    assert_memory_equal(dev.mem + 0x21, buf, sizeof(buf));
    assert_int_equal(dev.mem[0x20], 0xee);
    assert_int_equal(dev.mem[0x21 + sizeof(buf)], 0xee);
    for (unsigned i = 0; i < dev.ncalls && i < TESTDEV_LOG; i++) {
        unsigned s = dev.log[i].size;
        assert_true(s == 1 || s == 2 || s == 4 || s == 8);
    }
    assert_int_equal(address_space_read(f->as, 0x3021, back, sizeof(back)), MEMTX_OK);
    assert_memory_equal(back, buf, sizeof(buf));
}

static const MemoryRegionOps strict4_ops = {
    .read = testdev_read,
    .write = testdev_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = { .min_access_size = 4, .max_access_size = 4, .unaligned = false },
    .impl = { .min_access_size = 4, .max_access_size = 4 },
};

static const MemoryRegionOps upto4_ops = {
    .read = testdev_read,
    .write = testdev_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = { .min_access_size = 1, .max_access_size = 4, .unaligned = false },
    .impl = { .min_access_size = 1, .max_access_size = 4 },
};

static void test_valid_rejects(void **state)
{
    Fix *f = *state;
    TestDev dev = { .memlike = true };
    TestDev dev2 = { .memlike = true };
    MemoryRegion *io = fx_io(f, &strict4_ops, &dev, "strict", 0x100);
    MemoryRegion *io2 = fx_io(f, &upto4_ops, &dev2, "upto4", 0x100);
    uint64_t v;

    assert_int_equal(memory_region_add_subregion(f->root, 0x1000, io), 0);
    assert_int_equal(memory_region_add_subregion(f->root, 0x2000, io2), 0);

    /* Too small. */
    assert_int_equal(as_rd(f->as, 0x1000, 1, &v), MEMTX_ERROR);
    assert_int_equal(as_wr(f->as, 0x1000, 2, 0x1234), MEMTX_ERROR);
    assert_int_equal(memory_region_dispatch_read(io, 0, &v, 2), MEMTX_ERROR);
    assert_int_equal(memory_region_dispatch_write(io, 0, 1, 1), MEMTX_ERROR);
    /* Too large. */
    assert_int_equal(memory_region_dispatch_read(io, 0, &v, 8), MEMTX_ERROR);
    assert_int_equal(memory_region_dispatch_write(io, 0, 1, 8), MEMTX_ERROR);
    assert_int_equal(memory_region_dispatch_read(io2, 0, &v, 8), MEMTX_ERROR);
    /* Unaligned. */
    assert_int_equal(as_rd(f->as, 0x1002, 4, &v), MEMTX_ERROR);
    assert_int_equal(as_wr(f->as, 0x1001, 4, 0xffffffff), MEMTX_ERROR);
    assert_int_equal(as_rd(f->as, 0x2001, 2, &v), MEMTX_ERROR);
    assert_int_equal(as_wr(f->as, 0x2002, 4, 0), MEMTX_ERROR);
    assert_int_equal(memory_region_dispatch_read(io2, 3, &v, 2), MEMTX_ERROR);
    assert_int_equal(dev.ncalls, 0);
    assert_int_equal(dev2.ncalls, 0);

    /* Valid ones reach the device. */
    assert_int_equal(as_wr(f->as, 0x1004, 4, 0x89abcdef), MEMTX_OK);
    assert_int_equal(rd_ok(f->as, 0x1004, 4), 0x89abcdef);
    assert_int_equal(memory_region_dispatch_read(io, 4, &v, 4), MEMTX_OK);
    assert_int_equal(v, 0x89abcdef);
    assert_int_equal(dev.nwrites, 1);
    assert_int_equal(dev.nreads, 2);
    assert_int_equal(rd_ok(f->as, 0x2001, 1), dev2.mem[1]);
    assert_int_equal(rd_ok(f->as, 0x2002, 2), dev2.mem[2] | (dev2.mem[3] << 8));
    assert_int_equal(dev2.nreads, 2);
}

static const MemoryRegionOps bytewise_ops = {
    .read = testdev_read,
    .write = testdev_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = { .min_access_size = 1, .max_access_size = 4 },
    .impl = { .min_access_size = 1, .max_access_size = 1 },
};

static void test_impl_split(void **state)
{
    Fix *f = *state;
    TestDev dev = { .memlike = true };
    MemoryRegion *io = fx_io(f, &bytewise_ops, &dev, "bytewise", 0x100);

    assert_int_equal(memory_region_add_subregion(f->root, 0x1000, io), 0);
    wr_ok(f->as, 0x1008, 4, 0x44332211);
    assert_int_equal(dev.nwrites, 4);
    for (unsigned i = 0; i < 4; i++) {
        assert_int_equal(dev.log[i].addr, 8 + i);
        assert_int_equal(dev.log[i].size, 1);
        assert_int_equal(dev.log[i].data, 0x11 * (i + 1));
    }
    testdev_reset_log(&dev);
    assert_int_equal(rd_ok(f->as, 0x1008, 4), 0x44332211);
    assert_int_equal(dev.nreads, 4);
    for (unsigned i = 0; i < 4; i++) {
        assert_int_equal(dev.log[i].size, 1);
    }
    testdev_reset_log(&dev);
    uint64_t v;
    assert_int_equal(memory_region_dispatch_read(io, 8, &v, 2), MEMTX_OK);
    assert_int_equal(v, 0x2211);
    assert_int_equal(dev.nreads, 2);
}

static const MemoryRegionOps wide_ops = {
    .read = testdev_read,
    .write = testdev_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = { .min_access_size = 1, .max_access_size = 4 },
    .impl = { .min_access_size = 4, .max_access_size = 4 },
};

static void test_impl_widen(void **state)
{
    Fix *f = *state;
    TestDev dev = { .memlike = true };
    MemoryRegion *io = fx_io(f, &wide_ops, &dev, "wide", 0x100);

    fill_pattern(&dev);
    assert_int_equal(memory_region_add_subregion(f->root, 0x1000, io), 0);
    assert_int_equal(rd_ok(f->as, 0x1004, 1), dev.mem[4]);
    assert_int_equal(dev.nreads, 1);
    assert_int_equal(dev.log[0].size, 4);
    assert_int_equal(dev.log[0].addr, 4);
    testdev_reset_log(&dev);
    assert_int_equal(rd_ok(f->as, 0x1006, 1), dev.mem[6]);
    assert_int_equal(rd_ok(f->as, 0x1004, 2), dev.mem[4] | (dev.mem[5] << 8));
    for (unsigned i = 0; i < dev.ncalls; i++) {
        assert_int_equal(dev.log[i].size, 4);
    }
    assert_int_equal(dev.nwrites, 0);
}

static const MemoryRegionOps be_ops = {
    .read = testdev_read,
    .write = testdev_write,
    .endianness = DEVICE_BIG_ENDIAN,
    .valid = { .min_access_size = 1, .max_access_size = 8 },
    .impl = { .min_access_size = 1, .max_access_size = 8 },
};

static const MemoryRegionOps be_bytewise_ops = {
    .read = testdev_read,
    .write = testdev_write,
    .endianness = DEVICE_BIG_ENDIAN,
    .valid = { .min_access_size = 1, .max_access_size = 4 },
    .impl = { .min_access_size = 1, .max_access_size = 1 },
};

static void test_big_endian(void **state)
{
    Fix *f = *state;
    TestDev dev = { .read_value = 0x11223344 };
    MemoryRegion *io = fx_io(f, &be_ops, &dev, "be", 0x100);

    assert_int_equal(memory_region_add_subregion(f->root, 0x1000, io), 0);
    assert_int_equal(rd_ok(f->as, 0x1000, 4), 0x44332211);
    uint8_t b[4];
    assert_int_equal(address_space_read(f->as, 0x1000, b, 4), MEMTX_OK);
    assert_int_equal(b[0], 0x11);
    assert_int_equal(b[3], 0x44);
    dev.read_value = 0xaabb;
    assert_int_equal(rd_ok(f->as, 0x1000, 2), 0xbbaa);
    dev.read_value = 0x5a;
    assert_int_equal(rd_ok(f->as, 0x1000, 1), 0x5a);
    dev.read_value = 0x0102030405060708ull;
    assert_int_equal(rd_ok(f->as, 0x1000, 8), 0x0807060504030201ull);

    testdev_reset_log(&dev);
    wr_ok(f->as, 0x1000, 4, 0x11223344);
    wr_ok(f->as, 0x1000, 2, 0x1122);
    wr_ok(f->as, 0x1000, 1, 0x11);
    assert_int_equal(dev.nwrites, 3);
    assert_int_equal(dev.log[0].data, 0x44332211);
    assert_int_equal(dev.log[1].data, 0x2211);
    assert_int_equal(dev.log[2].data, 0x11);

    /* A byte-wide big-endian device sees the guest's bytes in address
     * order, like memory. */
    TestDev bd = { .memlike = true };
    MemoryRegion *bio = fx_io(f, &be_bytewise_ops, &bd, "be-bytes", 0x100);
    assert_int_equal(memory_region_add_subregion(f->root, 0x2000, bio), 0);
    wr_ok(f->as, 0x2000, 4, 0x11223344);
    assert_int_equal(bd.nwrites, 4);
    for (unsigned i = 0; i < 4; i++) {
        assert_int_equal(bd.log[i].size, 1);
        assert_int_equal(bd.mem[bd.log[i].addr], bd.log[i].data);
    }
    assert_int_equal(bd.mem[0], 0x44);
    assert_int_equal(bd.mem[1], 0x33);
    assert_int_equal(bd.mem[2], 0x22);
    assert_int_equal(bd.mem[3], 0x11);
    assert_int_equal(rd_ok(f->as, 0x2000, 4), 0x11223344);
}

static void test_set_offset(void **state)
{
    Fix *f = *state;
    TestDev dev = { .read_value = 7 };
    MemoryRegion *io = fx_io(f, &testdev_ops, &dev, "legacy", 0x100);

    assert_int_equal(memory_region_add_subregion(f->root, 0x1000, io), 0);
    memory_region_set_offset(io, 0x100);
    assert_int_equal(rd_ok(f->as, 0x1004, 4), 7);
    wr_ok(f->as, 0x1008, 2, 0xbeef);
    assert_int_equal(dev.ncalls, 2);
    assert_int_equal(dev.log[0].addr, 0x104);
    assert_int_equal(dev.log[1].addr, 0x108);
    assert_int_equal(dev.log[1].data, 0xbeef);
    /* The legacy offset does not move the region. */
    FlatView *fv = address_space_get_flatview(f->as);
    const FlatRange *fr = flatview_lookup(fv, 0x1000);
    assert_non_null(fr);
    assert_ptr_equal(fr->mr, io);
    assert_int_equal(fr->start, 0x1000);
    flatview_unref(fv);
}

static const MemoryRegionOps aligned_impl_ops = {
    .read = testdev_read,
    .write = testdev_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = { .min_access_size = 1, .max_access_size = 4, .unaligned = true },
    .impl = { .min_access_size = 1, .max_access_size = 4, .unaligned = false },
};

/* impl.unaligned = false: an unaligned access the guest may make is turned
 * into naturally aligned device calls (memory/dispatch.c honours ops->impl). */
static void test_impl_unaligned_split(void **state)
{
    Fix *f = *state;
    TestDev dev = { .memlike = true };
    MemoryRegion *io = fx_io(f, &aligned_impl_ops, &dev, "aligned", 0x100);

    fill_pattern(&dev);
    assert_int_equal(memory_region_add_subregion(f->root, 0x1000, io), 0);
    uint64_t want = 0;
    for (unsigned i = 0; i < 4; i++) {
        want |= (uint64_t)dev.mem[0x11 + i] << (8 * i);
    }
    assert_int_equal(rd_ok(f->as, 0x1011, 4), want);
    for (unsigned i = 0; i < dev.ncalls; i++) {
        if (dev.log[i].addr % dev.log[i].size) {
            fail_msg("device call %u: size %u at 0x%llx is not naturally aligned", i,
                     dev.log[i].size, (unsigned long long)dev.log[i].addr);
        }
    }
    testdev_reset_log(&dev);
    uint8_t before[8];
    memcpy(before, dev.mem + 0x10, 8);
    wr_ok(f->as, 0x1011, 4, 0xa1b2c3d4);
    assert_int_equal(dev.mem[0x10], before[0]);
    assert_int_equal(dev.mem[0x11], 0xd4);
    assert_int_equal(dev.mem[0x12], 0xc3);
    assert_int_equal(dev.mem[0x13], 0xb2);
    assert_int_equal(dev.mem[0x14], 0xa1);
    assert_int_equal(dev.mem[0x15], before[5]);
    for (unsigned i = 0; i < dev.ncalls; i++) {
        assert_int_equal(dev.log[i].addr % dev.log[i].size, 0);
    }
}

static const MemoryRegionOps default_impl_ops = {
    .read = testdev_read,
    .write = testdev_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = { .min_access_size = 1, .max_access_size = 8 },
    /* impl left 0: the device implements 1..4 bytes */
};

static void test_impl_default_max4(void **state)
{
    Fix *f = *state;
    TestDev dev = { .memlike = true };
    MemoryRegion *io = fx_io(f, &default_impl_ops, &dev, "dflt", 0x100);

    assert_int_equal(memory_region_add_subregion(f->root, 0x1000, io), 0);
    wr_ok(f->as, 0x1010, 8, 0x1122334455667788ull);
    assert_int_equal(dev.nwrites, 2);
    assert_int_equal(dev.log[0].size, 4);
    assert_int_equal(dev.log[1].size, 4);
    assert_int_equal(dev.log[0].addr, 0x10);
    assert_int_equal(dev.log[0].data, 0x55667788);
    assert_int_equal(dev.log[1].addr, 0x14);
    assert_int_equal(dev.log[1].data, 0x11223344);
    testdev_reset_log(&dev);
    assert_int_equal(rd_ok(f->as, 0x1010, 8), 0x1122334455667788ull);
    assert_int_equal(dev.nreads, 2);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fix_setup, fix_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_io_sizes_and_long),    T(test_valid_rejects),     T(test_impl_split),
        T(test_impl_widen),           T(test_big_endian),        T(test_set_offset),
        T(test_impl_unaligned_split), T(test_impl_default_max4),
    };
    return cmocka_run_group_tests_name("memory-access", tests, NULL, NULL);
}
