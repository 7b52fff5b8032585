/* SPDX-License-Identifier: MIT */
/*
 * A bounded byte ring that keeps the newest bytes: writing into a full
 * ring drops the oldest ones.  The serial backends (vmm/chardev.h) keep
 * the guest's output nobody has read yet in one.  Not thread safe.
 */
#ifndef STRATA_VMM_RING_H
#define STRATA_VMM_RING_H

#include <stddef.h>
#include <stdint.h>

typedef struct ByteRing {
    uint8_t *buf;
    size_t cap;  /* bytes it holds at most */
    size_t head; /* offset of the oldest byte */
    size_t len;  /* bytes held */
} ByteRing;

/* An empty ring of cap bytes (cap > 0); 0 or -ENOMEM. */
int byte_ring_init(ByteRing *r, size_t cap);
/* Frees the storage (the ring is then empty, cap 0). */
void byte_ring_free(ByteRing *r);
/* Appends n bytes; the oldest bytes go if they do not fit (of src itself
 * only the last cap bytes are kept).  Returns how many bytes were dropped. */
size_t byte_ring_write(ByteRing *r, const void *src, size_t n);
/* The oldest bytes held that are contiguous in memory: sets *p, returns
 * how many (0 when empty). */
size_t byte_ring_peek(const ByteRing *r, const uint8_t **p);
/* Forgets the n oldest bytes (at most len). */
void byte_ring_consume(ByteRing *r, size_t n);

#endif /* STRATA_VMM_RING_H */
