/* SPDX-License-Identifier: MIT */
/*
 * memory/state-table: the field-table codec on a struct with every kind of
 * field.  The encoding is exactly the hand-written put sequence; decoding
 * gives the struct back; truncation anywhere, a count above its array and
 * a malformed table are refused with the field's path; state_walk finds
 * each element's bytes.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "memory/state-table.h"

typedef struct Inner {
    uint16_t a;
    uint64_t b;
} Inner;

typedef struct Outer {
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    uint32_t arr[3];
    uint8_t raw[5];
    Inner one;
    uint8_t n;
    uint8_t bytes[4];
    uint8_t ni;
    Inner list[2];
} Outer;

static const StateField inner_fields[] = {
    STATE_U16(Inner, a),
    STATE_U64(Inner, b),
};
static const StateTable inner_table = STATE_TABLE(Inner, inner_fields);

static const StateField outer_fields[] = {
    STATE_U8(Outer, u8),
    STATE_U16(Outer, u16),
    STATE_U32(Outer, u32),
    STATE_U64(Outer, u64),
    STATE_U32_ARRAY(Outer, arr),
    STATE_BYTES(Outer, raw),
    STATE_STRUCT(Outer, one, &inner_table),
    STATE_U8(Outer, n),
    STATE_U8_VARRAY(Outer, bytes, n),
    STATE_U8(Outer, ni),
    STATE_STRUCT_VARRAY(Outer, list, &inner_table, ni),
};
static const StateTable outer_table = STATE_TABLE(Outer, outer_fields);

static Outer sample(void)
{
    Outer o;
    memset(&o, 0, sizeof(o));
    o.u8 = 0x81;
    o.u16 = 0x8283;
    o.u32 = 0x84858687;
    o.u64 = 0x88898a8b8c8d8e8full;
    o.arr[0] = 1;
    o.arr[1] = 2;
    o.arr[2] = 0xdeadbeef;
    memcpy(o.raw, "hello", 5);
    o.one = (Inner){ 0x1234, 0x1122334455667788ull };
    o.n = 2;
    o.bytes[0] = 0xaa;
    o.bytes[1] = 0xbb;
    o.ni = 1;
    o.list[0] = (Inner){ 7, 8 };
    return o;
}

static void encode(const Outer *o, uint8_t **buf, size_t *len)
{
    StateWriter w;
    state_writer_init(&w);
    assert_int_equal(state_encode(&w, &outer_table, o), 0);
    assert_int_equal(state_writer_finish(&w, buf, len), 0);
}

/* The bytes are the explicit put sequence of the same fields. */
static void test_layout(void **unused)
{
    (void)unused;
    Outer o = sample();
    StateWriter w;
    uint8_t *want, *got;
    size_t wlen, glen;
    state_writer_init(&w);
    state_put_u8(&w, o.u8);
    state_put_u16(&w, o.u16);
    state_put_u32(&w, o.u32);
    state_put_u64(&w, o.u64);
    for (int i = 0; i < 3; i++)
        state_put_u32(&w, o.arr[i]);
    state_put_bytes(&w, o.raw, 5);
    state_put_u16(&w, o.one.a);
    state_put_u64(&w, o.one.b);
    state_put_u8(&w, o.n);
    state_put_bytes(&w, o.bytes, 2);
    state_put_u8(&w, o.ni);
    state_put_u16(&w, o.list[0].a);
    state_put_u64(&w, o.list[0].b);
    assert_int_equal(state_writer_finish(&w, &want, &wlen), 0);
    encode(&o, &got, &glen);
    assert_int_equal(glen, wlen);
    assert_memory_equal(got, want, wlen);
    free(want);
    free(got);
}

static void test_round_trip(void **unused)
{
    (void)unused;
    Outer o = sample(), back;
    uint8_t *buf;
    size_t len;
    char err[160] = "";
    encode(&o, &buf, &len);
    StateReader r;
    state_reader_init(&r, buf, len);
    memset(&back, 0, sizeof(back));
    if (state_decode(&r, &outer_table, &back, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    assert_true(state_reader_done(&r));
    assert_memory_equal(&back, &o, sizeof(o));
    free(buf);
}

/* Every truncation is refused, naming the field it cut. */
static void test_truncated(void **unused)
{
    (void)unused;
    Outer o = sample(), back;
    uint8_t *buf;
    size_t len;
    encode(&o, &buf, &len);
    for (size_t n = 0; n < len; n++) {
        StateReader r;
        char err[160] = "";
        state_reader_init(&r, buf, n);
        assert_int_equal(state_decode(&r, &outer_table, &back, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "truncated"));
    }
    StateReader r;
    char err[160] = "";
    state_reader_init(&r, buf, len - 1); /* the last byte of list[0].b */
    assert_int_equal(state_decode(&r, &outer_table, &back, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "list[0].b: truncated"));
    free(buf);
}

static void test_counts(void **unused)
{
    (void)unused;
    Outer o = sample(), back;
    uint8_t *buf;
    size_t len;
    char err[160] = "";
    StateWriter w;
    state_writer_init(&w);
    o.n = 5; /* bytes[] holds 4 */
    assert_int_equal(state_encode(&w, &outer_table, &o), -EINVAL);
    state_writer_free(&w);
    o.n = 4;
    o.ni = 2;
    encode(&o, &buf, &len);
    StateReader r;
    state_reader_init(&r, buf, len);
    memset(&back, 0, sizeof(back));
    assert_int_equal(state_decode(&r, &outer_table, &back, err, sizeof(err)), 0);
    assert_memory_equal(&back, &o, sizeof(o));
    /* n on the wire (after 1+2+4+8+12+5+10 bytes) says 5 */
    buf[42] = 5;
    state_reader_init(&r, buf, len);
    assert_int_equal(state_decode(&r, &outer_table, &back, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "bytes: n 5 is more than the 4 it can hold"));
    free(buf);
}

static void test_bad_table(void **unused)
{
    (void)unused;
    static const StateField late[] = {
        STATE_U8_VARRAY(Outer, bytes, n), /* its count comes after it */
        STATE_U8(Outer, n),
    };
    static const StateTable late_table = STATE_TABLE(Outer, late);
    static const StateField wrong[] = {
        STATE_STRUCT(Outer, one, &late_table), /* a table of another size */
    };
    static const StateTable wrong_table = STATE_TABLE(Outer, wrong);
    Outer o = sample();
    StateWriter w;
    uint8_t byte = 0;
    char err[160] = "";
    StateReader r;
    state_writer_init(&w);
    assert_int_equal(state_encode(&w, &late_table, &o), -EINVAL);
    assert_int_equal(state_encode(&w, &wrong_table, &o), -EINVAL);
    state_writer_free(&w);
    state_reader_init(&r, &byte, 1);
    assert_int_equal(state_decode(&r, &late_table, &o, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "table error"));
}

typedef struct Spans {
    char path[16][32];
    size_t off[16], len[16];
    unsigned n;
} Spans;

static void record(void *opaque, const char *path, size_t off, size_t len)
{
    Spans *s = opaque;
    assert_true(s->n < 16);
    snprintf(s->path[s->n], sizeof(s->path[0]), "%s", path);
    s->off[s->n] = off;
    s->len[s->n] = len;
    s->n++;
}

static void test_walk(void **unused)
{
    (void)unused;
    Outer o = sample();
    Spans s = { .n = 0 };
    assert_int_equal(state_walk(&outer_table, &o, record, &s), 0);
    /* u8 u16 u32 u64 arr[0..2] raw one.a one.b n bytes[0..1] ni list[0].a list[0].b */
    assert_int_equal(s.n, 16);
    assert_string_equal(s.path[15], "list[0].b");
    assert_int_equal(s.off[15] + s.len[15], 56);
    assert_string_equal(s.path[4], "arr[0]");
    assert_int_equal(s.off[4], 15);
    assert_string_equal(s.path[7], "raw");
    assert_int_equal(s.len[7], 5);
    assert_string_equal(s.path[9], "one.b");
    assert_int_equal(s.off[9], 34);
    assert_string_equal(s.path[11], "bytes[0]");
    assert_int_equal(s.off[11], 43);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout),    cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_truncated), cmocka_unit_test(test_counts),
        cmocka_unit_test(test_bad_table), cmocka_unit_test(test_walk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
