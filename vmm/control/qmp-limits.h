/* SPDX-License-Identifier: MIT */
/*
 * The QMP server's memory bounds (see qmp.h): every client's input and
 * output buffer may always hold its base; capacity beyond the base is
 * charged to one pool shared by all clients, so the server's buffers have
 * one bound however many clients ask for big ones.  And a bound on how many
 * values parsing a request line can make.
 */
#ifndef STRATA_VMM_CONTROL_QMP_LIMITS_H
#define STRATA_VMM_CONTROL_QMP_LIMITS_H

#include <stddef.h>
#include <stdint.h>

/* Bytes of buffer capacity beyond the clients' bases: used <= size. */
typedef struct QmpPool {
    size_t used, size;
} QmpPool;

/* Gives *buf a capacity of exactly want bytes, the part beyond base charged
 * to pool: 0, -ENOSPC (the pool cannot give it; *buf unchanged) or -ENOMEM. */
int qmp_buf_resize(QmpPool *pool, char **buf, size_t *cap, size_t base, size_t want);
/* Makes the capacity at least need (<= limit): doubling up to limit, or
 * only what is needed when the pool is short.  0, -ENOSPC or -ENOMEM. */
int qmp_buf_reserve(QmpPool *pool, char **buf, size_t *cap, size_t base, size_t limit, size_t need);
/* Shrinks a buffer holding used bytes back to base (handing the rest back to
 * the pool) once it holds at most half its base. */
void qmp_buf_trim(QmpPool *pool, char **buf, size_t *cap, size_t base, size_t used);
/* Frees the buffer and hands its charge back. */
void qmp_buf_free(QmpPool *pool, char **buf, size_t *cap, size_t base);
/* The '{' '[' ',' ':' of JSON text outside its strings: an upper bound on
 * the number of values parsing it makes (less one). */
size_t qmp_count_tokens(const char *s, size_t len);
/* Milliseconds of CLOCK_MONOTONIC. */
uint64_t qmp_now_ms(void);

#endif /* STRATA_VMM_CONTROL_QMP_LIMITS_H */
