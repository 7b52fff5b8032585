/* SPDX-License-Identifier: MIT */
/* i8042 reset paths, ACPI S5 poweroff, save/load. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "devices/i8042.h"

typedef struct Fixture {
    MemoryContext *ctx;
    MemoryRegion io;
    AddressSpace *as;
    I8042State dev;
    int resets, poweroffs;
} Fixture;

static void on_power(void *opaque, PowerEvent ev)
{
    Fixture *f = opaque;
    if (ev == POWER_RESET)
        f->resets++;
    else if (ev == POWER_OFF)
        f->poweroffs++;
}

static int setup(void **state)
{
    Fixture *f = calloc(1, sizeof(*f));
    f->ctx = memory_context_new();
    assert_int_equal(memory_region_init(&f->io, f->ctx, "io", 0x10000), 0);
    assert_int_equal(i8042_init(&f->dev, f->ctx, on_power, f), 0);
    assert_int_equal(memory_region_add_subregion(&f->io, 0x60, i8042_data_region(&f->dev)), 0);
    assert_int_equal(memory_region_add_subregion(&f->io, 0x64, i8042_cmd_region(&f->dev)), 0);
    assert_int_equal(memory_region_add_subregion(&f->io, 0x600, i8042_sleep_region(&f->dev)), 0);
    f->as = address_space_new(f->ctx, &f->io, "I/O");
    assert_non_null(f->as);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    Fixture *f = *state;
    address_space_destroy(f->as);
    memory_region_del_subregion(&f->io, i8042_data_region(&f->dev));
    memory_region_del_subregion(&f->io, i8042_cmd_region(&f->dev));
    memory_region_del_subregion(&f->io, i8042_sleep_region(&f->dev));
    i8042_destroy(&f->dev);
    memory_region_destroy(&f->io);
    memory_context_free(f->ctx);
    free(f);
    return 0;
}

static void out8(Fixture *f, uint16_t port, uint8_t v)
{
    address_space_write(f->as, port, &v, 1);
}

static uint8_t in8(Fixture *f, uint16_t port)
{
    uint8_t v = 0;
    address_space_read(f->as, port, &v, 1);
    return v;
}

static void test_reset_fe(void **state)
{
    Fixture *f = *state;
    /* Linux's kb_wait: input buffer empty */
    assert_int_equal(in8(f, 0x64) & 0x02, 0);
    out8(f, 0x64, 0xfe);
    assert_int_equal(f->resets, 1);
    assert_int_equal(f->poweroffs, 0);
}

static void test_reset_output_port(void **state)
{
    Fixture *f = *state;
    out8(f, 0x64, 0xd1);
    assert_true(in8(f, 0x64) & 0x08); /* a command is pending */
    out8(f, 0x60, 0x03);              /* bit 0 set: no reset */
    assert_int_equal(f->resets, 0);
    out8(f, 0x64, 0xd1);
    out8(f, 0x60, 0x02); /* bit 0 clear: reset */
    assert_int_equal(f->resets, 1);
}

static void test_self_test_and_cmd_byte(void **state)
{
    Fixture *f = *state;
    out8(f, 0x64, 0xaa);
    assert_true(in8(f, 0x64) & 0x01);
    assert_int_equal(in8(f, 0x60), 0x55);
    assert_false(in8(f, 0x64) & 0x01);
    out8(f, 0x64, 0x60);
    out8(f, 0x60, 0x47);
    out8(f, 0x64, 0x20);
    assert_int_equal(in8(f, 0x60), 0x47);
    assert_int_equal(f->resets, 0);
}

static void test_sleep(void **state)
{
    Fixture *f = *state;
    out8(f, 0x600, (3 << 2) | 0x20); /* S3: ignored */
    assert_int_equal(f->poweroffs, 0);
    out8(f, 0x600, 5 << 2); /* S5 without SLP_EN */
    assert_int_equal(f->poweroffs, 0);
    out8(f, 0x600, (5 << 2) | 0x20);
    assert_int_equal(f->poweroffs, 1);
    assert_int_equal(in8(f, 0x601), 0);
}

static void test_acpi_reset_reg(void **state)
{
    Fixture *f = *state;
    out8(f, 0x602, 0x41); /* wrong value: ignored */
    assert_int_equal(f->resets, 0);
    out8(f, 0x602, 0x42);
    assert_int_equal(f->resets, 1);
    assert_int_equal(f->poweroffs, 0);
}

static void test_save_load(void **state)
{
    Fixture *f = *state;
    out8(f, 0x64, 0x60);
    out8(f, 0x60, 0x65);
    out8(f, 0x64, 0xd1); /* pending command saved */
    uint8_t *buf;
    size_t len;
    assert_int_equal(i8042_save(&f->dev, &buf, &len), 0);
    i8042_reset(&f->dev);
    char err[160];
    assert_int_equal(i8042_load(&f->dev, buf, len, err, sizeof(err)), 0);
    out8(f, 0x60, 0x00); /* completes the saved 0xd1: reset */
    assert_int_equal(f->resets, 1);
    out8(f, 0x64, 0x20);
    assert_int_equal(in8(f, 0x60), 0x65);
    /* truncated and corrupted streams are refused */
    for (size_t n = 0; n < len; n++)
        assert_true(i8042_load(&f->dev, buf, n, err, sizeof(err)) < 0);
    for (size_t i = 0; i < len; i++) {
        buf[i] ^= 0xff;
        (void)i8042_load(&f->dev, buf, len, err, sizeof(err));
        buf[i] ^= 0xff;
    }
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reset_fe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_output_port, setup, teardown),
        cmocka_unit_test_setup_teardown(test_self_test_and_cmd_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_acpi_reset_reg, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sleep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_load, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
