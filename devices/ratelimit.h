/* SPDX-License-Identifier: MIT */
/*
 * Token buckets for I/O rate limits (--disk bw=,iops=, --net bw=,pps=;
 * QMP block_set_io_throttle, x-net-set-rate-limit).  Pure: the caller
 * passes the time (CLOCK_MONOTONIC nanoseconds, or a fake clock in tests),
 * nothing here sleeps, locks or allocates.
 *
 * A bucket holds up to `burst` tokens and gains `rate` per second.  A
 * request of n tokens passes when the bucket holds min(n, burst): one
 * larger than the burst thus passes once the bucket is full and leaves it
 * in debt (negative), which later requests wait out, so no request size is
 * ever stuck.  rate 0 = unlimited.
 *
 * A RateLimiter pairs a bytes bucket with an operations bucket (requests
 * or packets): a request passes when both say yes, and then takes from
 * both.
 */
#ifndef STRATA_DEVICES_RATELIMIT_H
#define STRATA_DEVICES_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

#define RATELIMIT_NS 1000000000ull

typedef struct TokenBucket {
    uint64_t rate;  /* tokens per second; 0 = unlimited */
    uint64_t burst; /* capacity, >= 1 when rate is set */
    int64_t tokens; /* may be negative: debt */
    uint64_t frac;  /* fraction of a token gained, in 1/RATELIMIT_NS */
    uint64_t last_ns;
} TokenBucket;

/* A limit as configured: 0 rates are unlimited; a 0 burst means one
 * second's worth of the rate. */
typedef struct RateLimitConfig {
    uint64_t bw, ops;             /* bytes/s, operations/s */
    uint64_t bw_burst, ops_burst; /* bytes, operations */
} RateLimitConfig;

typedef struct RateLimiter {
    TokenBucket bytes, ops;
    RateLimitConfig cfg; /* as set (bursts as given, 0 = default) */
} RateLimiter;

/* Sets rate and burst (0: one second's worth, at least 1) and fills the
 * bucket, as of now_ns. */
void token_bucket_init(TokenBucket *b, uint64_t rate, uint64_t burst, uint64_t now_ns);
/* Whether n tokens may be taken at now_ns; takes them if so (see above). */
bool token_bucket_consume(TokenBucket *b, uint64_t n, uint64_t now_ns);
/* Takes n tokens whatever the bucket holds (debt allowed): for what was
 * already done, e.g. a packet read before its size was known. */
void token_bucket_charge(TokenBucket *b, uint64_t n, uint64_t now_ns);
/* Nanoseconds from now_ns until token_bucket_consume(n) would pass (0: it
 * would now). */
uint64_t token_bucket_wait_ns(TokenBucket *b, uint64_t n, uint64_t now_ns);

/* Applies cfg (both buckets start full), as of now_ns. */
void ratelimit_set(RateLimiter *rl, const RateLimitConfig *cfg, uint64_t now_ns);
/* True if cfg limits anything. */
static inline bool ratelimit_active_cfg(const RateLimitConfig *cfg)
{
    return cfg->bw || cfg->ops;
}
/* True if rl limits anything. */
bool ratelimit_active(const RateLimiter *rl);
/* The burst in effect for a rate and a configured burst (0: the rate's
 * one second; 0 if unlimited). */
uint64_t ratelimit_effective_burst(uint64_t rate, uint64_t burst);
/* Nanoseconds from now_ns until `bytes` and one operation would pass (0:
 * now); takes nothing.  bytes 0: until the bytes bucket is out of debt. */
uint64_t ratelimit_wait_ns(RateLimiter *rl, uint64_t bytes, uint64_t now_ns);
/* Takes `bytes` and one operation if both buckets allow it at now_ns;
 * else takes nothing, returns false and, if wait_ns, says how long until
 * it would pass. */
bool ratelimit_consume(RateLimiter *rl, uint64_t bytes, uint64_t now_ns, uint64_t *wait_ns);
/* Takes `bytes` and one operation whatever the buckets hold. */
void ratelimit_charge(RateLimiter *rl, uint64_t bytes, uint64_t now_ns);
/* The current CLOCK_MONOTONIC time in nanoseconds. */
uint64_t ratelimit_now_ns(void);

#endif /* STRATA_DEVICES_RATELIMIT_H */
