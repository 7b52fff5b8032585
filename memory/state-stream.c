/* SPDX-License-Identifier: MIT */
/* State streams (see state-stream.h). */
#include "memory/state-stream.h"

#include <isa-l/crc.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SECTION_HEADER 12u

void state_writer_init(StateWriter *w)
{
    memset(w, 0, sizeof(*w));
}

void state_writer_free(StateWriter *w)
{
    free(w->buf);
    memset(w, 0, sizeof(*w));
}

static bool reserve(StateWriter *w, size_t n)
{
    if (w->failed)
        return false;
    if (n > SIZE_MAX - w->len) {
        w->failed = true;
        return false;
    }
    if (w->len + n <= w->cap)
        return true;
    size_t cap = w->cap ? w->cap : 64;
    while (cap < w->len + n)
        cap *= 2;
    uint8_t *nb = realloc(w->buf, cap);
    if (!nb) {
        w->failed = true;
        return false;
    }
    w->buf = nb;
    w->cap = cap;
    return true;
}

void state_put_bytes(StateWriter *w, const void *p, size_t n)
{
    if (!n || !reserve(w, n))
        return;
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void put_le(StateWriter *w, uint64_t v, unsigned n)
{
    uint8_t b[8];
    for (unsigned i = 0; i < n; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    state_put_bytes(w, b, n);
}

void state_put_u8(StateWriter *w, uint8_t v)
{
    put_le(w, v, 1);
}
void state_put_u16(StateWriter *w, uint16_t v)
{
    put_le(w, v, 2);
}
void state_put_u32(StateWriter *w, uint32_t v)
{
    put_le(w, v, 4);
}
void state_put_u64(StateWriter *w, uint64_t v)
{
    put_le(w, v, 8);
}

size_t state_section_begin(StateWriter *w, uint32_t magic, uint16_t version)
{
    size_t cookie = w->len;
    state_put_u32(w, magic);
    state_put_u16(w, version);
    state_put_u16(w, 0);
    state_put_u32(w, 0); /* length, filled in by state_section_end */
    return cookie;
}

void state_section_end(StateWriter *w, size_t cookie)
{
    if (w->failed || cookie + SECTION_HEADER > w->len)
        return;
    size_t payload = w->len - cookie - SECTION_HEADER;
    if (payload > UINT32_MAX) {
        w->failed = true;
        return;
    }
    for (unsigned i = 0; i < 4; i++)
        w->buf[cookie + 8 + i] = (uint8_t)(payload >> (8 * i));
    state_put_u32(w, state_crc32(w->buf + cookie, w->len - cookie));
}

void state_reader_init(StateReader *r, const void *buf, size_t len)
{
    r->buf = buf;
    r->len = buf ? len : 0;
    r->pos = 0;
    r->failed = false;
}

bool state_get_bytes(StateReader *r, void *p, size_t n)
{
    if (r->failed || n > r->len - r->pos) {
        r->failed = true;
        if (n)
            memset(p, 0, n);
        return false;
    }
    if (n)
        memcpy(p, r->buf + r->pos, n);
    r->pos += n;
    return true;
}

static uint64_t get_le(StateReader *r, unsigned n)
{
    uint8_t b[8];
    uint64_t v = 0;
    if (!state_get_bytes(r, b, n))
        return 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)b[i] << (8 * i);
    return v;
}

uint8_t state_get_u8(StateReader *r)
{
    return (uint8_t)get_le(r, 1);
}
uint16_t state_get_u16(StateReader *r)
{
    return (uint16_t)get_le(r, 2);
}
uint32_t state_get_u32(StateReader *r)
{
    return (uint32_t)get_le(r, 4);
}
uint64_t state_get_u64(StateReader *r)
{
    return get_le(r, 8);
}

bool state_reader_done(const StateReader *r)
{
    return !r->failed && r->pos == r->len;
}

int state_fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

int state_section_open(StateReader *r, uint32_t magic, uint16_t max_version, uint16_t *version,
                       StateReader *payload, char *err, size_t errlen)
{
    size_t start = r->pos;
    if (r->failed || r->len - r->pos < SECTION_HEADER)
        return state_fail(err, errlen, -ENODATA, "truncated section header (%zu of %u bytes)",
                          r->failed ? 0 : r->len - r->pos, SECTION_HEADER);
    StateReader h = *r;
    uint32_t m = state_get_u32(&h);
    uint16_t v = state_get_u16(&h);
    uint16_t flags = state_get_u16(&h);
    uint32_t len = state_get_u32(&h);
    if (m != magic)
        return state_fail(err, errlen, -EINVAL, "wrong section magic 0x%08x (expected 0x%08x)", m,
                          magic);
    if (v == 0 || v > max_version)
        return state_fail(err, errlen, -EINVAL, "unsupported version %u (this build reads 1..%u)",
                          v, max_version);
    if (flags)
        return state_fail(err, errlen, -EINVAL, "unknown section flags 0x%x", flags);
    if ((uint64_t)len + 4 > h.len - h.pos)
        return state_fail(err, errlen, -ENODATA,
                          "truncated section: %llu bytes of payload+CRC, %zu left",
                          (unsigned long long)len + 4, h.len - h.pos);
    uint32_t crc = 0;
    for (unsigned i = 0; i < 4; i++)
        crc |= (uint32_t)h.buf[h.pos + len + i] << (8 * i);
    uint32_t want = state_crc32(r->buf + start, SECTION_HEADER + (size_t)len);
    if (crc != want)
        return state_fail(err, errlen, -EINVAL, "section CRC mismatch (0x%08x, computed 0x%08x)",
                          crc, want);
    state_reader_init(payload, h.buf + h.pos, len);
    *version = v;
    r->pos = h.pos + len + 4;
    return 0;
}

uint32_t state_crc32_update(uint32_t crc, const void *p, size_t n)
{
    /* ISA-L's crc32_gzip_refl is zlib's crc32 (IEEE 802.3, reflected,
     * inverted; chained the same way), folded with PCLMULQDQ where the CPU
     * has it: migration checks every RAM record with it, on both sides. */
    return crc32_gzip_refl(crc, p, n);
}

uint32_t state_crc32(const void *p, size_t n)
{
    return state_crc32_update(0, p, n);
}

int state_writer_finish(StateWriter *w, uint8_t **buf, size_t *len)
{
    if (w->failed) {
        state_writer_free(w);
        return -ENOMEM;
    }
    *buf = w->buf;
    *len = w->len;
    return 0;
}
