/* SPDX-License-Identifier: MIT */
/*
 * Per device, tests generated from its field table (state_walk lists every
 * element its section holds, and where):
 *  - round trip: the scenario's section decodes to a struct that encodes to
 *    the same bytes and decodes to the same struct; a fresh device loads
 *    it and saves it unchanged;
 *  - corrupt fields: for every element, the section with that element's
 *    bits flipped, its low bit flipped, or the payload cut at it or inside
 *    it (each with a valid CRC, so the decoder and the device's checks are
 *    what stands in the way).  The codec and the device either refuse it
 *    with a reason, the device unchanged, or take it exactly: saving gives
 *    the corrupted bytes back.  A cut payload is always refused.
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

#include "tests/state/devcases.h"

#define HDR 12u /* section header: magic, version, flags, length */
#define MAX_SPANS 512

typedef struct Span {
    char path[64];
    size_t off, len;
} Span;

typedef struct Spans {
    Span s[MAX_SPANS];
    unsigned n;
} Spans;

static void record(void *opaque, const char *path, size_t off, size_t len)
{
    Spans *sp = opaque;
    assert_true(sp->n < MAX_SPANS);
    snprintf(sp->s[sp->n].path, sizeof(sp->s[0].path), "%s", path);
    sp->s[sp->n].off = off;
    sp->s[sp->n].len = len;
    sp->n++;
}

static void *decode(const StateSection *sec, const uint8_t *buf, size_t len)
{
    void *st = malloc(sec->table->size);
    char err[256] = "";
    assert_non_null(st);
    if (state_load_section(sec, buf, len, st, err, sizeof(err)) != 0)
        fail_msg("%s: %s", sec->what, err);
    return st;
}

static uint8_t *encode(const StateSection *sec, const void *st, size_t *len)
{
    uint8_t *buf;
    assert_int_equal(state_save_section(sec, st, &buf, len), 0);
    return buf;
}

/* A section of sec's magic and version around payload [p, p+n). */
static uint8_t *wrap(const StateSection *sec, const uint8_t *p, size_t n, size_t *len)
{
    StateWriter w;
    uint8_t *buf;
    state_writer_init(&w);
    size_t c = state_section_begin(&w, sec->magic, sec->version);
    state_put_bytes(&w, p, n);
    state_section_end(&w, c);
    assert_int_equal(state_writer_finish(&w, &buf, len), 0);
    return buf;
}

static void test_round_trip(void **state)
{
    const DevCase *c = *state;
    const StateSection *sec = c->section;
    DevInst d;
    size_t len, len2, len3;
    char err[256] = "";
    dev_open(&d, c, true);
    uint8_t *buf = dev_save(&d, &len);
    dev_close(&d, c);
    void *st = decode(sec, buf, len);
    uint8_t *buf2 = encode(sec, st, &len2);
    assert_int_equal(len2, len);
    assert_memory_equal(buf2, buf, len);
    void *st2 = decode(sec, buf2, len2);
    assert_memory_equal(st2, st, sec->table->size);
    dev_open(&d, c, false);
    if (d.ops->load(d.dev, buf, len, err, sizeof(err)) != 0)
        fail_msg("%s: %s", c->name, err);
    uint8_t *buf3 = dev_save(&d, &len3);
    dev_close(&d, c);
    assert_int_equal(len3, len);
    assert_memory_equal(buf3, buf, len);
    free(buf);
    free(buf2);
    free(buf3);
    free(st);
    free(st2);
}

/* The codec takes m exactly or refuses it with a reason; a cut payload is
 * always refused. */
static void codec_verdict(const StateSection *sec, const uint8_t *m, size_t mlen, bool cut,
                          const char *what)
{
    void *st = malloc(sec->table->size);
    char err[256] = "";
    assert_non_null(st);
    int r = state_load_section(sec, m, mlen, st, err, sizeof(err));
    if (r == 0 && cut)
        fail_msg("%s: the codec took it", what);
    if (r < 0 && !err[0])
        fail_msg("%s: refused without a reason", what);
    if (r == 0) {
        size_t len;
        uint8_t *again = encode(sec, st, &len);
        if (len != mlen || memcmp(again, m, len))
            fail_msg("%s: decoded, but encodes to other bytes", what);
        free(again);
    }
    free(st);
}

/* The device takes m exactly or refuses it, unchanged, with a reason;
 * returns whether it took it. */
static bool device_verdict(DevInst *d, const uint8_t *m, size_t mlen, bool cut, const char *what)
{
    size_t blen, alen;
    char err[256] = "";
    uint8_t *before = dev_save(d, &blen);
    int r = d->ops->load(d->dev, m, mlen, err, sizeof(err));
    uint8_t *after = dev_save(d, &alen);
    if (r == 0 && cut)
        fail_msg("%s: the device took it", what);
    if (r < 0 && (!err[0] || (r != -EINVAL && r != -ENODATA)))
        fail_msg("%s: refused with %d and '%s'", what, r, err);
    if (r < 0 && (alen != blen || memcmp(after, before, alen)))
        fail_msg("%s: refused, but the device changed", what);
    if (r == 0 && (alen != mlen || memcmp(after, m, alen)))
        fail_msg("%s: taken, but it saves other bytes", what);
    free(before);
    free(after);
    return r == 0;
}

/* Payload p with element s corrupted by mutation k (0: all bits, 1: the
 * low bit, 2: cut at the element, 3: cut inside it); NULL if k does not
 * apply to s. */
static uint8_t *mutate(const uint8_t *p, size_t plen, const Span *s, unsigned k, size_t *n,
                       bool *cut)
{
    uint8_t *m = malloc(plen);
    assert_non_null(m);
    memcpy(m, p, plen);
    *n = plen;
    *cut = k >= 2;
    if (k == 0)
        for (size_t i = 0; i < s->len; i++)
            m[s->off + i] ^= 0xff;
    else if (k == 1)
        m[s->off] ^= 0x01;
    else if (k == 2)
        *n = s->off;
    else if (s->len > 1)
        *n = s->off + s->len - 1;
    else {
        free(m);
        return NULL;
    }
    return m;
}

static void test_corrupt_fields(void **state)
{
    static const char *const kinds[] = { "bits flipped", "low bit flipped", "cut before it",
                                         "cut inside it" };
    const DevCase *c = *state;
    const StateSection *sec = c->section;
    Spans *sp = calloc(1, sizeof(*sp));
    DevInst d;
    size_t len;
    assert_non_null(sp);
    dev_open(&d, c, true);
    uint8_t *buf = dev_save(&d, &len);
    dev_close(&d, c);
    void *st = decode(sec, buf, len);
    assert_int_equal(state_walk(sec->table, st, record, sp), 0);
    assert_int_equal(sp->s[sp->n - 1].off + sp->s[sp->n - 1].len, len - HDR - 4);
    unsigned tried = 0, taken = 0;
    dev_open(&d, c, false);
    for (unsigned i = 0; i < sp->n; i++) {
        for (unsigned k = 0; k < 4; k++) {
            char what[160];
            size_t n, mlen;
            bool cut;
            uint8_t *p = mutate(buf + HDR, len - HDR - 4, &sp->s[i], k, &n, &cut);
            if (!p)
                continue;
            uint8_t *m = wrap(sec, p, n, &mlen);
            snprintf(what, sizeof(what), "%s, %s: %s", c->name, sp->s[i].path, kinds[k]);
            codec_verdict(sec, m, mlen, cut, what);
            taken += device_verdict(&d, m, mlen, cut, what);
            tried++;
            free(m);
            free(p);
        }
    }
    dev_close(&d, c);
    printf("%s: %u elements, %u corrupt sections: %u refused, %u taken as they were\n", c->name,
           sp->n, tried, tried - taken, taken);
    free(buf);
    free(st);
    free(sp);
}

int main(void)
{
    struct CMUnitTest tests[64];
    char names[64][80];
    unsigned n = 0;
    for (unsigned i = 0; i < dev_ncases && n + 2 <= 64; i++) {
        snprintf(names[n], sizeof(names[n]), "%s: round trip", dev_cases[i].name);
        tests[n] = (struct CMUnitTest){ .name = names[n],
                                        .test_func = test_round_trip,
                                        .initial_state = (void *)&dev_cases[i] };
        n++;
        snprintf(names[n], sizeof(names[n]), "%s: corrupt fields", dev_cases[i].name);
        tests[n] = (struct CMUnitTest){ .name = names[n],
                                        .test_func = test_corrupt_fields,
                                        .initial_state = (void *)&dev_cases[i] };
        n++;
    }
    return _cmocka_run_group_tests("state fields", tests, n, NULL, NULL);
}
