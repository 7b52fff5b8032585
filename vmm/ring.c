/* SPDX-License-Identifier: MIT */
/* A bounded byte ring (see ring.h). */
#include "vmm/ring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int byte_ring_init(ByteRing *r, size_t cap)
{
    memset(r, 0, sizeof(*r));
    r->buf = cap ? malloc(cap) : NULL;
    if (!r->buf)
        return -ENOMEM;
    r->cap = cap;
    return 0;
}

void byte_ring_free(ByteRing *r)
{
    free(r->buf);
    memset(r, 0, sizeof(*r));
}

size_t byte_ring_write(ByteRing *r, const void *src, size_t n)
{
    const uint8_t *s = src;
    size_t dropped = 0;
    if (!r->cap)
        return n;
    if (n > r->cap) { /* only src's tail can stay */
        dropped = n - r->cap;
        s += dropped;
        n = r->cap;
    }
    if (r->len + n > r->cap) {
        size_t over = r->len + n - r->cap;
        byte_ring_consume(r, over);
        dropped += over;
    }
    size_t tail = (r->head + r->len) % r->cap;
    size_t first = n < r->cap - tail ? n : r->cap - tail;
    memcpy(r->buf + tail, s, first);
    memcpy(r->buf, s + first, n - first);
    r->len += n;
    return dropped;
}

size_t byte_ring_peek(const ByteRing *r, const uint8_t **p)
{
    *p = r->buf + r->head;
    size_t run = r->cap - r->head;
    return r->len < run ? r->len : run;
}

void byte_ring_consume(ByteRing *r, size_t n)
{
    if (n > r->len)
        n = r->len;
    r->len -= n;
    r->head = r->len ? (r->head + n) % r->cap : 0;
}
