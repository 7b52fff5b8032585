/* SPDX-License-Identifier: MIT */
/* Token buckets (see ratelimit.h). */
#include "devices/ratelimit.h"

#include <time.h>

typedef unsigned __int128 u128;

uint64_t ratelimit_effective_burst(uint64_t rate, uint64_t burst)
{
    if (!rate)
        return 0;
    return burst ? burst : rate;
}

void token_bucket_init(TokenBucket *b, uint64_t rate, uint64_t burst, uint64_t now_ns)
{
    b->rate = rate;
    b->burst = ratelimit_effective_burst(rate, burst);
    if (b->burst > INT64_MAX)
        b->burst = INT64_MAX;
    b->tokens = (int64_t)b->burst;
    b->frac = 0;
    b->last_ns = now_ns;
}

/* Adds what the time since the last refill earned, up to the burst. */
static void refill(TokenBucket *b, uint64_t now_ns)
{
    if (now_ns <= b->last_ns)
        return;
    u128 gained = (u128)(now_ns - b->last_ns) * b->rate + b->frac;
    b->last_ns = now_ns;
    u128 whole = gained / RATELIMIT_NS;
    __int128 room = (__int128)b->burst - b->tokens;
    if ((__int128)whole >= room) {
        b->tokens = (int64_t)b->burst;
        b->frac = 0;
    } else {
        b->tokens += (int64_t)whole;
        b->frac = (uint64_t)(gained % RATELIMIT_NS);
    }
}

/* What must be in the bucket for n tokens to pass. */
static int64_t needed(const TokenBucket *b, uint64_t n)
{
    return (int64_t)(n < b->burst ? n : b->burst);
}

bool token_bucket_consume(TokenBucket *b, uint64_t n, uint64_t now_ns)
{
    if (!b->rate)
        return true;
    refill(b, now_ns);
    if (b->tokens < needed(b, n))
        return false;
    token_bucket_charge(b, n, now_ns);
    return true;
}

void token_bucket_charge(TokenBucket *b, uint64_t n, uint64_t now_ns)
{
    if (!b->rate)
        return;
    refill(b, now_ns);
    /* a debt deeper than INT64_MIN would take centuries to pay anyway */
    if (n > (uint64_t)INT64_MAX || b->tokens < INT64_MIN + (int64_t)n)
        b->tokens = INT64_MIN;
    else
        b->tokens -= (int64_t)n;
}

uint64_t token_bucket_wait_ns(TokenBucket *b, uint64_t n, uint64_t now_ns)
{
    if (!b->rate)
        return 0;
    refill(b, now_ns);
    __int128 missing = (__int128)needed(b, n) - b->tokens;
    if (missing <= 0)
        return 0;
    u128 nano_tokens = (u128)missing * RATELIMIT_NS - b->frac;
    u128 ns = (nano_tokens + b->rate - 1) / b->rate;
    return ns > UINT64_MAX ? UINT64_MAX : (uint64_t)ns;
}

void ratelimit_set(RateLimiter *rl, const RateLimitConfig *cfg, uint64_t now_ns)
{
    rl->cfg = *cfg;
    token_bucket_init(&rl->bytes, cfg->bw, cfg->bw_burst, now_ns);
    token_bucket_init(&rl->ops, cfg->ops, cfg->ops_burst, now_ns);
}

bool ratelimit_active(const RateLimiter *rl)
{
    return rl->bytes.rate || rl->ops.rate;
}

uint64_t ratelimit_wait_ns(RateLimiter *rl, uint64_t bytes, uint64_t now_ns)
{
    uint64_t wb = token_bucket_wait_ns(&rl->bytes, bytes, now_ns);
    uint64_t wo = token_bucket_wait_ns(&rl->ops, 1, now_ns);
    return wb > wo ? wb : wo;
}

bool ratelimit_consume(RateLimiter *rl, uint64_t bytes, uint64_t now_ns, uint64_t *wait_ns)
{
    uint64_t w = ratelimit_wait_ns(rl, bytes, now_ns);
    if (w) {
        if (wait_ns)
            *wait_ns = w;
        return false;
    }
    ratelimit_charge(rl, bytes, now_ns);
    return true;
}

void ratelimit_charge(RateLimiter *rl, uint64_t bytes, uint64_t now_ns)
{
    token_bucket_charge(&rl->bytes, bytes, now_ns);
    token_bucket_charge(&rl->ops, 1, now_ns);
}

uint64_t ratelimit_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * RATELIMIT_NS + (uint64_t)ts.tv_nsec;
}
