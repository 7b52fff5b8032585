/* SPDX-License-Identifier: MIT */
/* The ACPI GED event register: raise asserts the level line, reads show the
 * pending events without clearing them, write-1-to-clear acknowledges and
 * lowers the line only when nothing is left, odd access sizes and offsets;
 * save/load round-trips, drives the line and refuses bad streams. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "devices/ged.h"
#include "memory/state-stream.h"

#define PORT 0x610

typedef struct Fixture {
    MemoryContext *ctx;
    MemoryRegion io;
    AddressSpace *as;
    GedState dev;
    int level; /* the line as the device last drove it */
    int edges; /* level changes seen */
} Fixture;

static void line_set(void *opaque, int level)
{
    Fixture *f = opaque;
    if (level != f->level)
        f->edges++;
    f->level = level;
}

static int setup(void **state)
{
    Fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->ctx = memory_context_new();
    assert_int_equal(memory_region_init(&f->io, f->ctx, "io", 0x10000), 0);
    IrqLine line = { .set = line_set, .opaque = f };
    assert_int_equal(ged_init(&f->dev, f->ctx, &line), 0);
    assert_int_equal(memory_region_add_subregion(&f->io, PORT, &f->dev.io), 0);
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
    ged_destroy(&f->dev);
    memory_region_destroy(&f->io);
    memory_context_free(f->ctx);
    free(f);
    return 0;
}

static uint32_t rd(Fixture *f, uint64_t off, unsigned size)
{
    uint8_t b[4] = { 0xee, 0xee, 0xee, 0xee };
    assert_int_equal(address_space_read(f->as, PORT + off, b, size), MEMTX_OK);
    uint32_t v = 0;
    for (unsigned i = 0; i < size; i++)
        v |= (uint32_t)b[i] << (8 * i);
    return v;
}

static void wr(Fixture *f, uint64_t off, uint32_t v, unsigned size)
{
    uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
    assert_int_equal(address_space_write(f->as, PORT + off, b, size), MEMTX_OK);
}

static void test_raise_ack(void **state)
{
    Fixture *f = *state;
    assert_int_equal(rd(f, 0, 4), 0);
    assert_int_equal(f->level, 0);
    /* unknown bits are not events */
    assert_int_equal(ged_raise(&f->dev, 0x80000000u), 0);
    assert_int_equal(f->level, 0);
    assert_int_equal(f->edges, 0);
    assert_int_equal(ged_raise(&f->dev, GED_EVENT_POWER_BUTTON), GED_EVENT_POWER_BUTTON);
    assert_int_equal(f->level, 1);
    /* reading does not acknowledge */
    assert_int_equal(rd(f, 0, 4), GED_EVENT_POWER_BUTTON);
    assert_int_equal(rd(f, 0, 1), GED_EVENT_POWER_BUTTON);
    assert_int_equal(rd(f, 1, 1), 0);
    assert_int_equal(rd(f, 2, 2), 0);
    assert_int_equal(f->level, 1);
    /* pressing again while pending: still one event, no new edge */
    ged_raise(&f->dev, GED_EVENT_POWER_BUTTON);
    assert_int_equal(f->edges, 1);
    assert_int_equal(f->dev.raised, 1);
    /* writing zeros, or ones to bits that are not pending, changes nothing */
    wr(f, 0, 0, 4);
    wr(f, 0, 0xfffffffeu, 4);
    wr(f, 1, 0xff, 1);
    assert_int_equal(ged_pending(&f->dev), GED_EVENT_POWER_BUTTON);
    assert_int_equal(f->level, 1);
    /* write 1 to clear: the line goes down */
    wr(f, 0, GED_EVENT_POWER_BUTTON, 1);
    assert_int_equal(ged_pending(&f->dev), 0);
    assert_int_equal(rd(f, 0, 4), 0);
    assert_int_equal(f->level, 0);
    assert_int_equal(f->edges, 2);
    assert_int_equal(f->dev.acked, 1);
    /* a second press after the ack is a new event */
    ged_raise(&f->dev, GED_EVENT_POWER_BUTTON);
    assert_int_equal(f->level, 1);
    wr(f, 0, 0xffffffffu, 4);
    assert_int_equal(f->level, 0);
    assert_int_equal(f->dev.raised, 2);
    assert_int_equal(f->dev.acked, 2);
    /* outside the 4-byte register: unassigned, the device is not reached */
    uint8_t b = 0;
    assert_int_equal(address_space_read(f->as, PORT + 4, &b, 1), MEMTX_DECODE_ERROR);
}

static void test_reset(void **state)
{
    Fixture *f = *state;
    ged_raise(&f->dev, GED_EVENT_POWER_BUTTON);
    assert_int_equal(f->level, 1);
    ged_reset(&f->dev);
    assert_int_equal(ged_pending(&f->dev), 0);
    assert_int_equal(f->level, 0);
}

static void test_save_load(void **state)
{
    Fixture *f = *state;
    uint8_t *buf, *empty;
    size_t len, elen;
    char err[160];
    assert_int_equal(ged_save(&f->dev, &empty, &elen), 0);
    ged_raise(&f->dev, GED_EVENT_POWER_BUTTON);
    assert_int_equal(ged_save(&f->dev, &buf, &len), 0);
    ged_reset(&f->dev);
    assert_int_equal(f->level, 0);
    /* loading a pending event drives the line up again */
    assert_int_equal(ged_load(&f->dev, buf, len, err, sizeof(err)), 0);
    assert_int_equal(ged_pending(&f->dev), GED_EVENT_POWER_BUTTON);
    assert_int_equal(f->level, 1);
    assert_int_equal(ged_load(&f->dev, empty, elen, err, sizeof(err)), 0);
    assert_int_equal(ged_pending(&f->dev), 0);
    assert_int_equal(f->level, 0);
    /* truncated, bit-flipped, trailing bytes: refused, device unchanged */
    assert_true(ged_load(&f->dev, buf, len - 1, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "acpi-ged state"));
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, buf, len);
    longer[len] = 0;
    assert_true(ged_load(&f->dev, longer, len + 1, err, sizeof(err)) < 0);
    free(longer);
    buf[len / 2] ^= 0x10;
    assert_true(ged_load(&f->dev, buf, len, err, sizeof(err)) < 0);
    assert_int_equal(ged_pending(&f->dev), 0);
    assert_int_equal(f->level, 0);
    free(buf);
    free(empty);
}

/* An event bit this version does not know, in an otherwise well-formed
 * section (CRC right): refused as inconsistent. */
static void test_load_unknown_bits(void **state)
{
    Fixture *f = *state;
    uint8_t *buf;
    size_t len;
    char err[160];
    ged_raise(&f->dev, GED_EVENT_POWER_BUTTON);
    assert_int_equal(ged_save(&f->dev, &buf, &len), 0);
    ged_reset(&f->dev);
    /* payload starts after magic(4) version(2) flags(2) length(4) */
    assert_true(len == 12 + 4 + 4);
    buf[12 + 3] = 0x80;
    uint32_t crc = state_crc32(buf, len - 4);
    for (int i = 0; i < 4; i++)
        buf[len - 4 + (size_t)i] = (uint8_t)(crc >> (8 * i));
    assert_int_equal(ged_load(&f->dev, buf, len, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "malformed"));
    assert_int_equal(ged_pending(&f->dev), 0);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_raise_ack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_unknown_bits, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
