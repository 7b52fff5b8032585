/* SPDX-License-Identifier: MIT */
/* pvpanic: the guest's panic write reaches the VMM once; reads tell the
 * supported events; save/load round-trips and refuses bad streams. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "devices/pvpanic.h"

typedef struct Fixture {
    MemoryContext *ctx;
    MemoryRegion io;
    AddressSpace *as;
    PvpanicState dev;
    int calls;
    uint8_t last;
} Fixture;

static void on_event(void *opaque, uint8_t ev)
{
    Fixture *f = opaque;
    f->calls++;
    f->last = ev;
}

static int setup(void **state)
{
    Fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->ctx = memory_context_new();
    assert_int_equal(memory_region_init(&f->io, f->ctx, "io", 0x10000), 0);
    assert_int_equal(pvpanic_init(&f->dev, f->ctx, on_event, f), 0);
    assert_int_equal(memory_region_add_subregion(&f->io, PVPANIC_PORT, &f->dev.io), 0);
    f->as = address_space_new(f->ctx, &f->io, "I/O");
    assert_non_null(f->as);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    Fixture *f = *state;
    address_space_destroy(f->as);
    memory_region_del_subregion(&f->io, &f->dev.io);
    pvpanic_destroy(&f->dev);
    memory_region_destroy(&f->io);
    memory_context_free(f->ctx);
    free(f);
    return 0;
}

static void test_panic_write(void **state)
{
    Fixture *f = *state;
    uint8_t v = 0;
    assert_int_equal(address_space_read(f->as, PVPANIC_PORT, &v, 1), MEMTX_OK);
    assert_int_equal(v, PVPANIC_PANICKED | PVPANIC_CRASH_LOADED);
    v = 0;
    address_space_write(f->as, PVPANIC_PORT, &v, 1); /* nothing to report */
    assert_int_equal(f->calls, 0);
    v = 0xfc; /* unknown bits only */
    address_space_write(f->as, PVPANIC_PORT, &v, 1);
    assert_int_equal(f->calls, 0);
    v = PVPANIC_PANICKED;
    address_space_write(f->as, PVPANIC_PORT, &v, 1);
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->last, PVPANIC_PANICKED);
    assert_int_equal(f->dev.events, PVPANIC_PANICKED);
    v = PVPANIC_PANICKED | PVPANIC_CRASH_LOADED | 0x80; /* unknown bits are masked */
    address_space_write(f->as, PVPANIC_PORT, &v, 1);
    assert_int_equal(f->calls, 2);
    assert_int_equal(f->last, PVPANIC_PANICKED | PVPANIC_CRASH_LOADED);
}

static void test_save_load(void **state)
{
    Fixture *f = *state;
    uint8_t v = PVPANIC_CRASH_LOADED, *buf;
    size_t len;
    char err[160];
    address_space_write(f->as, PVPANIC_PORT, &v, 1);
    assert_int_equal(pvpanic_save(&f->dev, &buf, &len), 0);
    pvpanic_reset(&f->dev);
    assert_int_equal(f->dev.events, 0);
    assert_int_equal(pvpanic_load(&f->dev, buf, len, err, sizeof(err)), 0);
    assert_int_equal(f->dev.events, PVPANIC_CRASH_LOADED);
    /* truncated, bit-flipped: refused, device unchanged */
    pvpanic_reset(&f->dev);
    assert_true(pvpanic_load(&f->dev, buf, len - 1, err, sizeof(err)) < 0);
    buf[len / 2] ^= 0x10;
    assert_true(pvpanic_load(&f->dev, buf, len, err, sizeof(err)) < 0);
    assert_int_equal(f->dev.events, 0);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_panic_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_load, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
