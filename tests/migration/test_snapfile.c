/* SPDX-License-Identifier: MIT */
/*
 * The snapshot header (vmm/migration/snapfile.c, docs/snapshot.md): round
 * trips, every bit flip caught by the CRC, each field's checks with a CRC
 * that matches (the attacker's case), and random headers whose accepted
 * ones always keep the invariants the loader maps by.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "memory/state-stream.h"
#include "vmm/migration/snapfile.h"

#define MIB (1ull << 20)

static void make(SnapHeader *h, unsigned n)
{
    memset(h, 0, sizeof(*h));
    h->nblocks = n;
    for (unsigned i = 0; i < n; i++) {
        snprintf(h->blocks[i].name, sizeof(h->blocks[i].name), "block%u", i);
        h->blocks[i].size = (i + 1) * 64 * MIB;
    }
    assert_int_equal(snap_layout(h), 0);
    h->state_len = 8000;
}

static uint64_t file_end(const SnapHeader *h)
{
    return h->state_off + h->state_len;
}

/* Re-seals a patched header's CRC. */
static void seal(uint8_t *b)
{
    uint32_t crc = state_crc32(b, SNAP_HEADER_LEN - 4);
    for (int i = 0; i < 4; i++)
        b[SNAP_HEADER_LEN - 4 + i] = (uint8_t)(crc >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void expect_refused(const uint8_t *b, uint64_t size, const char *want)
{
    SnapHeader h;
    char err[300] = "";
    assert_int_equal(snap_header_decode(&h, b, SNAP_HEADER_LEN, size, err, sizeof(err)), -1);
    if (!strstr(err, want))
        fail_msg("error '%s' lacks '%s'", err, want);
}

static void test_round_trip(void **state)
{
    (void)state;
    for (unsigned n = 1; n <= SNAP_MAX_BLOCKS; n++) {
        SnapHeader h, d;
        uint8_t b[SNAP_HEADER_LEN];
        make(&h, n);
        assert_int_equal(h.blocks[0].offset, SNAP_HEADER_LEN);
        for (unsigned i = 0; i < n; i++)
            assert_int_equal(h.blocks[i].offset % SNAP_PAGE_SIZE, 0);
        snap_header_encode(&h, b);
        char err[200];
        assert_int_equal(snap_header_decode(&d, b, sizeof(b), file_end(&h), err, sizeof(err)), 0);
        assert_int_equal(d.nblocks, n);
        assert_int_equal(d.state_off, h.state_off);
        assert_int_equal(d.state_len, h.state_len);
        for (unsigned i = 0; i < n; i++) {
            assert_string_equal(d.blocks[i].name, h.blocks[i].name);
            assert_int_equal(d.blocks[i].size, h.blocks[i].size);
            assert_int_equal(d.blocks[i].offset, h.blocks[i].offset);
        }
        /* a file one byte short of the state's end is truncated */
        expect_refused(b, file_end(&h) - 1, "truncated");
    }
}

static void test_every_bit_flip(void **state)
{
    (void)state;
    SnapHeader h;
    uint8_t b[SNAP_HEADER_LEN];
    make(&h, 2);
    snap_header_encode(&h, b);
    unsigned refused = 0;
    for (size_t bit = 0; bit < SNAP_HEADER_LEN * 8; bit++) {
        b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        SnapHeader d;
        char err[300];
        if (snap_header_decode(&d, b, sizeof(b), file_end(&h), err, sizeof(err)) < 0)
            refused++;
        b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    assert_int_equal(refused, SNAP_HEADER_LEN * 8);
}

static void test_fields(void **state)
{
    (void)state;
    SnapHeader h;
    uint8_t b[SNAP_HEADER_LEN], o[SNAP_HEADER_LEN];
    make(&h, 2);
    snap_header_encode(&h, o);
    uint64_t end = file_end(&h);
    uint8_t *blk1 = o + 32 + 48; /* block 1: name, size, offset */

    expect_refused(o, 100, "too short");
    memcpy(b, o, sizeof(b));
    memcpy(b, "STRATAMG", 8);
    expect_refused(b, end, "a migration stream");
    memcpy(b, o, sizeof(b));
    b[8] = 7;
    seal(b);
    expect_refused(b, end, "version 7");
    memcpy(b, o, sizeof(b));
    b[12] = 0;
    seal(b);
    expect_refused(b, end, "RAM blocks");
    memcpy(b, o, sizeof(b));
    b[12] = 5;
    seal(b);
    expect_refused(b, end, "RAM blocks");
    memcpy(b, o, sizeof(b));
    b[32] = '\n';
    seal(b);
    expect_refused(b, end, "printable");
    memcpy(b, o, sizeof(b));
    b[32 + 31] = 'x'; /* past the NUL: not padded */
    seal(b);
    expect_refused(b, end, "printable");
    memcpy(b, o, sizeof(b));
    put64(b + (blk1 - o) + 32, 4097); /* size not a page multiple */
    seal(b);
    expect_refused(b, end, "page multiples");
    memcpy(b, o, sizeof(b));
    put64(b + (blk1 - o) + 40, SNAP_HEADER_LEN); /* block 1 over block 0 */
    seal(b);
    expect_refused(b, end, "overlaps");
    memcpy(b, o, sizeof(b));
    put64(b + (blk1 - o) + 32, UINT64_MAX & ~4095ull); /* past any file */
    seal(b);
    expect_refused(b, end, "truncated");
    memcpy(b, o, sizeof(b));
    put64(b + 16, h.blocks[1].offset); /* state over RAM */
    seal(b);
    expect_refused(b, end, "overlap RAM");
    memcpy(b, o, sizeof(b));
    put64(b + 24, UINT64_MAX); /* state length past the file */
    seal(b);
    expect_refused(b, end, "truncated");
}

/* Random sealed headers: what is accepted keeps the loader's invariants. */
static void test_random(void **state)
{
    (void)state;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    unsigned accepted = 0;
    for (int round = 0; round < 20000; round++) {
        SnapHeader h;
        uint8_t b[SNAP_HEADER_LEN];
        make(&h, 1 + (unsigned)(round % 4));
        snap_header_encode(&h, b);
        uint64_t size = file_end(&h);
        for (int k = 0; k < 4; k++) { /* change up to 4 bytes of the fields */
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b[8 + x % (32 + 48 * 4 - 8)] = (uint8_t)(x >> 32);
        }
        seal(b);
        SnapHeader d;
        char err[300];
        if (snap_header_decode(&d, b, sizeof(b), size, err, sizeof(err)) < 0)
            continue;
        accepted++;
        uint64_t prev = SNAP_HEADER_LEN;
        assert_true(d.nblocks >= 1 && d.nblocks <= SNAP_MAX_BLOCKS);
        for (unsigned i = 0; i < d.nblocks; i++) {
            assert_true(d.blocks[i].offset >= prev);
            assert_true(d.blocks[i].offset % SNAP_PAGE_SIZE == 0);
            assert_true(d.blocks[i].size && d.blocks[i].size <= size - d.blocks[i].offset);
            prev = d.blocks[i].offset + d.blocks[i].size;
        }
        assert_true(d.state_off >= prev && d.state_len <= size - d.state_off);
    }
    printf("random headers: %u of 20000 accepted, all within the file\n", accepted);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_every_bit_flip),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
