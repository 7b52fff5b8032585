/* SPDX-License-Identifier: MIT */
/* Unit tests of the 16550A UART and its save/load stream. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/serial.h"
#include "memory/state-stream.h"

typedef struct Fixture {
    MemoryContext *ctx;
    SerialState s;
    int pipe[2];
    int irq_level, irq_changes;
} Fixture;

static void irq_set(void *opaque, int level)
{
    Fixture *f = opaque;
    f->irq_level = level;
    f->irq_changes++;
}

static int setup(void **state)
{
    Fixture *f = calloc(1, sizeof(*f));
    f->ctx = memory_context_new();
    assert_int_equal(pipe2(f->pipe, O_NONBLOCK), 0);
    IrqLine irq = { .set = irq_set, .opaque = f };
    assert_int_equal(serial_init(&f->s, f->ctx, f->pipe[1], &irq), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    Fixture *f = *state;
    serial_destroy(&f->s);
    memory_context_free(f->ctx);
    close(f->pipe[0]);
    close(f->pipe[1]);
    free(f);
    return 0;
}

static uint8_t rd(Fixture *f, unsigned reg)
{
    uint64_t v = 0;
    assert_int_equal(memory_region_dispatch_read(serial_region(&f->s), reg, &v, 1), MEMTX_OK);
    return (uint8_t)v;
}

static void wr(Fixture *f, unsigned reg, uint8_t v)
{
    assert_int_equal(memory_region_dispatch_write(serial_region(&f->s), reg, v, 1), MEMTX_OK);
}

static void test_reset_state(void **state)
{
    Fixture *f = *state;
    assert_int_equal(rd(f, 5), 0x60);        /* LSR: THRE | TEMT */
    assert_int_equal(rd(f, 2), 0x01);        /* IIR: no interrupt */
    assert_int_equal(rd(f, 4), 0x08);        /* MCR: OUT2 */
    assert_int_equal(rd(f, 6) & 0xf0, 0xb0); /* MSR: DCD DSR CTS */
    assert_int_equal(memory_region_size(serial_region(&f->s)), 8);
    assert_string_equal(memory_region_name(serial_region(&f->s)), "serial");
}

static void test_transmit(void **state)
{
    Fixture *f = *state;
    const char *msg = "hi!\n";
    for (const char *p = msg; *p; p++)
        wr(f, 0, (uint8_t)*p);
    char buf[16] = { 0 };
    assert_int_equal(read(f->pipe[0], buf, sizeof(buf)), 4);
    assert_string_equal(buf, msg);
    assert_int_equal(rd(f, 5) & 0x60, 0x60); /* THR empty again at once */
}

static void test_divisor_and_scratch(void **state)
{
    Fixture *f = *state;
    wr(f, 3, 0x83); /* DLAB, 8N1 */
    wr(f, 0, 0x01);
    wr(f, 1, 0x02);
    assert_int_equal(rd(f, 0), 0x01);
    assert_int_equal(rd(f, 1), 0x02);
    wr(f, 3, 0x03);
    assert_int_equal(rd(f, 1), 0x00); /* IER, not DLM */
    assert_int_equal(rd(f, 3), 0x03);
    wr(f, 7, 0x5a);
    assert_int_equal(rd(f, 7), 0x5a);
    char c;
    assert_int_equal(read(f->pipe[0], &c, 1), -1); /* the divisor write sent nothing */
}

static void test_thr_interrupt(void **state)
{
    Fixture *f = *state;
    wr(f, 1, 0x02); /* ETBEI with THR empty: THRI pending */
    assert_int_equal(f->irq_level, 1);
    assert_int_equal(rd(f, 2), 0x02);
    assert_int_equal(f->irq_level, 0); /* reading IIR acknowledged it */
    assert_int_equal(rd(f, 2), 0x01);
    wr(f, 0, 'x');
    assert_int_equal(f->irq_level, 1);
    wr(f, 1, 0x00);
    assert_int_equal(f->irq_level, 0);
}

static void test_receive_fifo(void **state)
{
    Fixture *f = *state;
    const uint8_t in[20] = "abcdefghijklmnopqrst";
    assert_int_equal(serial_receive(&f->s, in, 20), 1); /* no FIFO: one byte */
    assert_int_equal(rd(f, 5) & 1, 1);
    assert_int_equal(rd(f, 0), 'a');
    assert_int_equal(rd(f, 5) & 1, 0);
    wr(f, 2, 0x01); /* enable FIFOs */
    assert_int_equal(rd(f, 2) & 0xc0, 0xc0);
    assert_int_equal(serial_receive(&f->s, in, 20), 16);
    assert_int_equal(serial_can_receive(&f->s), 0);
    wr(f, 1, 0x01); /* ERBFI */
    assert_int_equal(rd(f, 2) & 0x0f, 0x04);
    assert_int_equal(f->irq_level, 1);
    for (int i = 0; i < 16; i++)
        assert_int_equal(rd(f, 0), in[i]);
    assert_int_equal(f->irq_level, 0);
    assert_int_equal(rd(f, 0), 0); /* empty FIFO reads 0 */
    assert_int_equal(serial_receive(&f->s, in, 3), 3);
    wr(f, 2, 0x03); /* clear RX */
    assert_int_equal(rd(f, 5) & 1, 0);
}

static void test_loopback(void **state)
{
    Fixture *f = *state;
    wr(f, 4, 0x10 | 0x0b); /* loop, OUT2, RTS, DTR */
    wr(f, 0, 'L');
    assert_int_equal(rd(f, 5) & 1, 1);
    assert_int_equal(rd(f, 0), 'L');
    assert_int_equal(rd(f, 6) & 0xf0, 0x80 | 0x20 | 0x10);
    char c;
    assert_int_equal(read(f->pipe[0], &c, 1), -1); /* nothing left the UART */
}

/* A state with everything non-default. */
static void make_interesting(Fixture *f)
{
    wr(f, 3, 0x80);
    wr(f, 0, 0x34);
    wr(f, 1, 0x12);
    wr(f, 3, 0x1b);
    wr(f, 2, 0x41);
    wr(f, 1, 0x07);
    wr(f, 4, 0x0b);
    wr(f, 7, 0xa5);
    const uint8_t in[] = "xyz";
    assert_int_equal(serial_receive(&f->s, in, 3), 3);
    (void)rd(f, 0); /* FIFO now "yz", head not at 0 */
}

static void test_save_load_roundtrip(void **state)
{
    Fixture *f = *state;
    make_interesting(f);
    uint8_t *buf;
    size_t len;
    assert_int_equal(serial_save(&f->s, &buf, &len), 0);

    Fixture *g;
    setup((void **)&g);
    char err[200];
    assert_int_equal(serial_load(&g->s, buf, len, err, sizeof(err)), 0);
    uint8_t *buf2;
    size_t len2;
    assert_int_equal(serial_save(&g->s, &buf2, &len2), 0);
    assert_int_equal(len, len2);
    assert_memory_equal(buf, buf2, len);
    /* guest-visible registers agree */
    for (unsigned r = 1; r < 8; r++)
        if (r != 2 && r != 5 && r != 6)
            assert_int_equal(rd(f, r), rd(g, r));
    assert_int_equal(rd(g, 0), 'y');
    assert_int_equal(rd(g, 0), 'z');
    assert_int_equal(g->irq_level, 1); /* THRI pending restored */
    free(buf);
    free(buf2);
    teardown((void **)&g);
}

static void test_load_rejects_truncated_and_corrupt(void **state)
{
    Fixture *f = *state;
    make_interesting(f);
    uint8_t *buf;
    size_t len;
    assert_int_equal(serial_save(&f->s, &buf, &len), 0);
    uint8_t *before;
    size_t blen;
    char err[200];

    Fixture *g;
    setup((void **)&g);
    assert_int_equal(serial_save(&g->s, &before, &blen), 0);
    /* every truncation */
    for (size_t n = 0; n < len; n++) {
        err[0] = 0;
        if (serial_load(&g->s, buf, n, err, sizeof(err)) >= 0)
            fail_msg("truncated stream of %zu/%zu bytes accepted", n, len);
        assert_true(err[0] != 0);
    }
    assert_int_equal(serial_load(&g->s, NULL, 0, err, sizeof(err)), -ENODATA);
    /* every single-bit flip */
    for (size_t i = 0; i < len * 8; i++) {
        uint8_t *c = malloc(len);
        memcpy(c, buf, len);
        c[i / 8] ^= (uint8_t)(1u << (i % 8));
        if (serial_load(&g->s, c, len, err, sizeof(err)) >= 0)
            fail_msg("corrupt stream (bit %zu flipped) accepted", i);
        free(c);
    }
    /* trailing garbage */
    uint8_t *t = malloc(len + 1);
    memcpy(t, buf, len);
    t[len] = 0;
    assert_true(serial_load(&g->s, t, len + 1, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "trailing"));
    free(t);
    /* nothing of the failed loads stuck */
    uint8_t *after;
    size_t alen;
    assert_int_equal(serial_save(&g->s, &after, &alen), 0);
    assert_int_equal(alen, blen);
    assert_memory_equal(before, after, alen);
    free(before);
    free(after);
    free(buf);
    teardown((void **)&g);
}

/* Streams with a valid CRC but bad content. */
static void craft(uint16_t version, const uint8_t *payload, size_t n, uint8_t **buf, size_t *len)
{
    StateWriter w;
    state_writer_init(&w);
    size_t sec = state_section_begin(&w, SERIAL_STATE_MAGIC, version);
    state_put_bytes(&w, payload, n);
    state_section_end(&w, sec);
    assert_false(w.failed);
    *buf = w.buf;
    *len = w.len;
}

static void test_load_rejects_inconsistent(void **state)
{
    Fixture *f = *state;
    /* divider(2) ier lcr mcr lsr msr scr fcr thri count [fifo] */
    const uint8_t good[] = { 0x0c, 0, 0x00, 0x03, 0x08, 0x60, 0xb0, 0, 0x00, 0, 0 };
    struct {
        int idx;
        uint8_t val;
        const char *why;
    } cases[] = {
        { 2, 0x10, "IER" },     /* reserved IER bit */
        { 4, 0x20, "MCR" },     /* reserved MCR bit */
        { 8, 0x02, "FCR" },     /* FCR clear bit is not state */
        { 5, 0xe0, "LSR" },     /* LSR bit 7 */
        { 9, 2, "THR" },        /* flag not 0/1 */
        { 10, 1, "rx_fifo" },   /* count without data: truncated */
        { 10, 200, "rx_fifo" }, /* count > 16: more than the FIFO holds */
    };
    uint8_t *buf;
    size_t len;
    char err[200];
    craft(1, good, sizeof(good), &buf, &len);
    assert_int_equal(serial_load(&f->s, buf, len, err, sizeof(err)), 0);
    free(buf);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t p[sizeof(good)];
        memcpy(p, good, sizeof(p));
        p[cases[i].idx] = cases[i].val;
        craft(1, p, sizeof(p), &buf, &len);
        err[0] = 0;
        if (serial_load(&f->s, buf, len, err, sizeof(err)) != -EINVAL)
            fail_msg("case %zu accepted", i);
        if (!strstr(err, cases[i].why))
            fail_msg("case %zu: '%s' lacks '%s'", i, err, cases[i].why);
        free(buf);
    }
    /* the FIFO checks, on payloads that carry the FIFO's bytes: one byte
     * with DR clear, two bytes with the FIFO off */
    static const struct {
        uint8_t p[13];
        size_t n;
        const char *why;
    } fifo[] = {
        { { 0x0c, 0, 0x00, 0x03, 0x08, 0x60, 0xb0, 0, 0x00, 0, 1, 'a' },
          12,
          "LSR.DR disagrees with the FIFO count" },
        { { 0x0c, 0, 0x00, 0x03, 0x08, 0x61, 0xb0, 0, 0x00, 0, 2, 'a', 'b' },
          13,
          "receive FIFO count too large" },
    };
    for (size_t i = 0; i < sizeof(fifo) / sizeof(fifo[0]); i++) {
        craft(1, fifo[i].p, fifo[i].n, &buf, &len);
        assert_int_equal(serial_load(&f->s, buf, len, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, fifo[i].why));
        free(buf);
    }
    /* DR set, FIFO empty */
    uint8_t p[sizeof(good)];
    memcpy(p, good, sizeof(p));
    p[5] = 0x61;
    craft(1, p, sizeof(p), &buf, &len);
    assert_int_equal(serial_load(&f->s, buf, len, err, sizeof(err)), -EINVAL);
    free(buf);
    /* a byte more than version 1 defines */
    uint8_t q[sizeof(good) + 1];
    memcpy(q, good, sizeof(good));
    q[sizeof(good)] = 0;
    craft(1, q, sizeof(q), &buf, &len);
    assert_int_equal(serial_load(&f->s, buf, len, err, sizeof(err)), -EINVAL);
    free(buf);
    /* too short a payload, with a valid CRC */
    craft(1, good, 5, &buf, &len);
    assert_int_equal(serial_load(&f->s, buf, len, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "truncated"));
    free(buf);
    /* a future version, version 0 */
    craft(2, good, sizeof(good), &buf, &len);
    assert_int_equal(serial_load(&f->s, buf, len, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "version 2"));
    free(buf);
    craft(0, good, sizeof(good), &buf, &len);
    assert_int_equal(serial_load(&f->s, buf, len, err, sizeof(err)), -EINVAL);
    free(buf);
    /* another device's section */
    StateWriter w;
    state_writer_init(&w);
    size_t sec = state_section_begin(&w, 0x12345678, 1);
    state_put_bytes(&w, good, sizeof(good));
    state_section_end(&w, sec);
    assert_int_equal(serial_load(&f->s, w.buf, w.len, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "magic"));
    state_writer_free(&w);
}

static void test_crc32(void **state)
{
    assert_int_equal(state_crc32("123456789", 9), 0xcbf43926u);
    assert_int_equal(state_crc32("", 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reset_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transmit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_divisor_and_scratch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_thr_interrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_receive_fifo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loopback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_load_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_rejects_truncated_and_corrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_rejects_inconsistent, setup, teardown),
        cmocka_unit_test(test_crc32),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
