/* SPDX-License-Identifier: MIT */
/* The board's device list (vmm/devlist.c): one call adds a device and maps
 * its regions; reset walks the list in order, teardown unmaps and destroys
 * last-added first; the list owns a device also when adding it fails; a
 * real device's state goes through its DeviceOps. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "devices/pvpanic.h"
#include "vmm/devlist.h"

/* A fake device: two I/O regions, and a log of what the list did to it. */
typedef struct Fake {
    MemoryRegion a, b;
    int id;
    bool mapped_at_destroy; /* a region was still mapped when destroyed */
} Fake;

static char calls[256]; /* "r1 r2 d2 d1 " */

static void note(char what, int id)
{
    size_t n = strlen(calls);
    snprintf(calls + n, sizeof(calls) - n, "%c%d ", what, id);
}

static uint64_t fake_read(void *opaque, uint64_t addr, unsigned size)
{
    return 0;
}

static void fake_write(void *opaque, uint64_t addr, uint64_t data, unsigned size)
{
}

static const MemoryRegionOps fake_io = { .read = fake_read, .write = fake_write };

static void fake_reset(void *dev)
{
    note('r', ((Fake *)dev)->id);
}

static void fake_destroy(void *dev)
{
    Fake *f = dev;
    note('d', f->id);
    f->mapped_at_destroy = memory_region_get_container(&f->a) || memory_region_get_container(&f->b);
    memory_region_destroy(&f->a);
    memory_region_destroy(&f->b);
}

static const DeviceOps fake_ops = { .name = "fake", .reset = fake_reset, .destroy = fake_destroy };

typedef struct Fixture {
    MemoryContext *ctx;
    MemoryRegion io;
    DevList list;
    char err[160];
} Fixture;

static Fake *fake_new(Fixture *f, int id)
{
    Fake *d = calloc(1, sizeof(*d));
    assert_non_null(d);
    d->id = id;
    assert_int_equal(memory_region_init_io(&d->a, f->ctx, &fake_io, d, "fake-a", 1), 0);
    assert_int_equal(memory_region_init_io(&d->b, f->ctx, &fake_io, d, "fake-b", 1), 0);
    return d;
}

static int setup(void **state)
{
    Fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->ctx = memory_context_new();
    assert_non_null(f->ctx);
    assert_int_equal(memory_region_init(&f->io, f->ctx, "io", 0x10000), 0);
    calls[0] = 0;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    Fixture *f = *state;
    devlist_destroy(&f->list);
    assert_int_equal(memory_region_destroy(&f->io), 0);
    memory_context_free(f->ctx);
    free(f);
    return 0;
}

/* Adding maps every region where the call says; names come from the call
 * or the ops; reset is in list order, teardown in reverse, after unmapping. */
static void test_add_reset_destroy(void **state)
{
    Fixture *f = *state;
    Fake *one = fake_new(f, 1), *two = fake_new(f, 2);
    assert_int_equal(devlist_add(&f->list, NULL, &fake_ops, one, true,
                                 DEV_REGIONS({ &f->io, 0x10, &one->a }, { &f->io, 0x20, &one->b }),
                                 f->err, sizeof(f->err)),
                     0);
    assert_int_equal(devlist_add(&f->list, "fake@0x30", &fake_ops, two, true,
                                 DEV_REGIONS({ &f->io, 0x30, &two->a }), f->err, sizeof(f->err)),
                     0);
    assert_ptr_equal(memory_region_get_container(&one->a), &f->io);
    assert_ptr_equal(memory_region_get_container(&one->b), &f->io);
    assert_ptr_equal(memory_region_get_container(&two->a), &f->io);
    assert_null(memory_region_get_container(&two->b));
    assert_int_equal(devlist_count(&f->list), 2);
    assert_string_equal(devlist_get(&f->list, 0)->name, "fake");
    assert_string_equal(devlist_get(&f->list, 1)->name, "fake@0x30");
    assert_null(devlist_get(&f->list, 2));

    devlist_reset(&f->list);
    assert_string_equal(calls, "r1 r2 ");
    calls[0] = 0;
    devlist_destroy(&f->list);
    assert_string_equal(calls, "d2 d1 ");
    assert_int_equal(devlist_count(&f->list), 0);
}

/* A region that cannot be mapped fails the call with the device named; the
 * list keeps the device and teardown unmaps what was mapped, then destroys. */
static void test_map_failure_keeps_ownership(void **state)
{
    Fixture *f = *state;
    Fake *one = fake_new(f, 1);
    MemoryRegion other;
    assert_int_equal(memory_region_init(&other, f->ctx, "other", 0x100), 0);
    assert_int_equal(memory_region_add_subregion(&other, 0, &one->b), 0); /* b is taken */
    int r = devlist_add(&f->list, NULL, &fake_ops, one, false,
                        DEV_REGIONS({ &f->io, 0x10, &one->a }, { &f->io, 0x20, &one->b }), f->err,
                        sizeof(f->err));
    assert_true(r < 0);
    assert_non_null(strstr(f->err, "mapping fake at 0x20"));
    assert_ptr_equal(memory_region_get_container(&one->a), &f->io);
    assert_int_equal(memory_region_del_subregion(&other, &one->b), 0);
    devlist_destroy(&f->list);
    assert_string_equal(calls, "d1 ");
    assert_false(one->mapped_at_destroy);
    assert_int_equal(memory_region_destroy(&other), 0);
    free(one);
}

/* A full list refuses the device and destroys (and frees, if owned) it at once. */
static void test_full_list(void **state)
{
    Fixture *f = *state;
    for (int i = 0; i < DEVLIST_MAX; i++)
        assert_int_equal(devlist_add(&f->list, NULL, &fake_ops, fake_new(f, i), true, NULL, 0,
                                     f->err, sizeof(f->err)),
                         0);
    calls[0] = 0;
    assert_int_equal(devlist_add(&f->list, NULL, &fake_ops, fake_new(f, 99), true, NULL, 0, f->err,
                                 sizeof(f->err)),
                     -ENOSPC);
    assert_string_equal(calls, "d99 ");
    assert_non_null(strstr(f->err, "too many devices"));
    assert_int_equal(devlist_count(&f->list), DEVLIST_MAX);
}

/* A real device through the list: its DeviceOps name, save, reset, load. */
static void test_real_device(void **state)
{
    Fixture *f = *state;
    PvpanicState p;
    assert_int_equal(pvpanic_init(&p, f->ctx, NULL, NULL), 0);
    assert_int_equal(devlist_add(&f->list, NULL, &pvpanic_device_ops, &p, false,
                                 DEV_REGIONS({ &f->io, PVPANIC_PORT, &p.io }), f->err,
                                 sizeof(f->err)),
                     0);
    DevRecord *d = devlist_get(&f->list, 0);
    assert_string_equal(d->name, "pvpanic");
    p.events = PVPANIC_PANICKED;
    uint8_t *buf;
    size_t len;
    assert_int_equal(d->ops->save(d->dev, &buf, &len), 0);
    devlist_reset(&f->list);
    assert_int_equal(p.events, 0);
    char err[120];
    assert_int_equal(d->ops->load(d->dev, buf, len, err, sizeof(err)), 0);
    assert_int_equal(p.events, PVPANIC_PANICKED);
    assert_true(d->ops->load(d->dev, buf, len - 1, err, sizeof(err)) < 0);
    free(buf);
    devlist_destroy(&f->list);
    assert_null(memory_region_get_container(&p.io));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_add_reset_destroy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_failure_keeps_ownership, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_real_device, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
