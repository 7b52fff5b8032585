/* SPDX-License-Identifier: MIT */
/*
 * The token buckets of devices/ratelimit.h on a fake clock: refill rate,
 * burst cap, default burst, debt for requests larger than the burst, wait
 * times, the paired bytes/operations limiter, and no drift over many small
 * refills.  No /dev/kvm.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "devices/ratelimit.h"

#define MS 1000000ull
#define S RATELIMIT_NS

static void test_rate_and_burst(void **state)
{
    (void)state;
    TokenBucket b;
    token_bucket_init(&b, 1000, 100, 0);           /* 1000/s, 100 at most */
    assert_true(token_bucket_consume(&b, 100, 0)); /* starts full */
    assert_false(token_bucket_consume(&b, 1, 0));
    assert_int_equal(token_bucket_wait_ns(&b, 1, 0), 1 * MS);
    assert_int_equal(token_bucket_wait_ns(&b, 50, 0), 50 * MS);
    assert_false(token_bucket_consume(&b, 50, 49 * MS));
    assert_true(token_bucket_consume(&b, 50, 50 * MS));
    /* a long idle time fills only up to the burst */
    assert_true(token_bucket_consume(&b, 100, 10 * S));
    assert_false(token_bucket_consume(&b, 1, 10 * S));
    /* taking 1 per ms: 1000 in one second, never more */
    unsigned got = 0;
    for (uint64_t t = 10 * S + MS; t <= 11 * S; t += MS)
        got += token_bucket_consume(&b, 1, t);
    assert_int_equal(got, 1000);
}

static void test_default_burst_and_unlimited(void **state)
{
    (void)state;
    TokenBucket b;
    token_bucket_init(&b, 4096, 0, 0); /* burst 0: one second's worth */
    assert_int_equal(b.burst, 4096);
    assert_true(token_bucket_consume(&b, 4096, 0));
    assert_false(token_bucket_consume(&b, 1, 0));
    token_bucket_init(&b, 0, 0, 0); /* unlimited */
    for (int i = 0; i < 100; i++)
        assert_true(token_bucket_consume(&b, UINT64_MAX / 2, 0));
    assert_int_equal(token_bucket_wait_ns(&b, UINT64_MAX, 0), 0);
}

/* A request larger than the burst passes once the bucket is full, and the
 * debt it leaves is paid before anything else passes. */
static void test_debt(void **state)
{
    (void)state;
    TokenBucket b;
    token_bucket_init(&b, 1000, 100, 0);
    assert_true(token_bucket_consume(&b, 10, 0));
    assert_false(token_bucket_consume(&b, 500, 0)); /* not full: waits */
    assert_int_equal(token_bucket_wait_ns(&b, 500, 0), 10 * MS);
    assert_true(token_bucket_consume(&b, 500, 10 * MS)); /* full: passes */
    assert_int_equal(b.tokens, -400);
    /* 400 of debt and 1 token: 401 ms */
    assert_int_equal(token_bucket_wait_ns(&b, 1, 10 * MS), 401 * MS);
    assert_false(token_bucket_consume(&b, 1, 410 * MS));
    assert_true(token_bucket_consume(&b, 1, 411 * MS));
    /* charge takes whatever the bucket holds */
    token_bucket_charge(&b, 1000, 411 * MS);
    assert_int_equal(b.tokens, -1000);
    /* a request of any size is never stuck: at most (size + burst)/rate */
    token_bucket_init(&b, 10, 1, 0);
    uint64_t w = token_bucket_wait_ns(&b, UINT64_MAX, 0);
    assert_int_equal(w, 0);
    assert_true(token_bucket_consume(&b, UINT64_MAX, 0));
    assert_false(token_bucket_consume(&b, 1, S));
}

/* Fractions of a token carry over while the bucket is not full: 3
 * tokens/s seen every 1 ms for 10 s gives exactly 30 (plus the 1 left
 * from the start), not 0 (per-step rounding) nor more. */
static void test_no_drift(void **state)
{
    (void)state;
    TokenBucket b;
    token_bucket_init(&b, 3, 2, 0);
    assert_true(token_bucket_consume(&b, 1, 0));
    unsigned got = 0;
    for (uint64_t t = MS; t <= 10 * S; t += MS)
        got += token_bucket_consume(&b, 1, t);
    assert_int_equal(got, 31);
    /* a rate that overflows 64 bits when multiplied by the time */
    token_bucket_init(&b, UINT64_MAX / 4, 1000, 0);
    assert_true(token_bucket_consume(&b, 1000, 0));
    assert_true(token_bucket_consume(&b, 1000, 1000 * S));
}

static void test_limiter(void **state)
{
    (void)state;
    RateLimiter rl;
    RateLimitConfig cfg = { .bw = 1 << 20, .ops = 100, .bw_burst = 64 << 10, .ops_burst = 4 };
    ratelimit_set(&rl, &cfg, 0);
    assert_true(ratelimit_active(&rl));
    uint64_t wait = 0;
    /* operations run out first: 4 small requests */
    for (int i = 0; i < 4; i++)
        assert_true(ratelimit_consume(&rl, 512, 0, &wait));
    assert_false(ratelimit_consume(&rl, 512, 0, &wait));
    assert_int_equal(wait, 10 * MS);
    /* then bytes: a 64 KiB request at 10 ms passes (ops refilled) and
     * leaves the bytes bucket short for the next one */
    assert_true(ratelimit_consume(&rl, 62 << 10, 10 * MS, &wait));
    assert_false(ratelimit_consume(&rl, 64 << 10, 20 * MS, &wait));
    assert_true(wait > 0);
    /* a refusal takes nothing from either bucket */
    int64_t ops_before = rl.ops.tokens;
    assert_false(ratelimit_consume(&rl, 64 << 10, 20 * MS, NULL));
    assert_int_equal(rl.ops.tokens, ops_before);
    assert_true(ratelimit_consume(&rl, 64 << 10, 20 * MS + wait, NULL));
    /* bytes 0: passes while the bytes bucket is not in debt */
    RateLimitConfig bw_only = { .bw = 1000, .bw_burst = 10 };
    ratelimit_set(&rl, &bw_only, 0);
    ratelimit_charge(&rl, 1500, 0);
    assert_int_equal(ratelimit_wait_ns(&rl, 0, 0), 1490 * MS);
    assert_int_equal(ratelimit_wait_ns(&rl, 0, 1490 * MS), 0);
    RateLimitConfig none = { 0 };
    ratelimit_set(&rl, &none, 0);
    assert_false(ratelimit_active(&rl));
    assert_int_equal(ratelimit_effective_burst(0, 5), 0);
    assert_int_equal(ratelimit_effective_burst(7, 0), 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rate_and_burst), cmocka_unit_test(test_default_burst_and_unlimited),
        cmocka_unit_test(test_debt),           cmocka_unit_test(test_no_drift),
        cmocka_unit_test(test_limiter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
