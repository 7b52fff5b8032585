/* SPDX-License-Identifier: MIT */
/*
 * The pre-copy's stopping rule (vmm/migration/policy.h) on round traces:
 * a modelled guest that dirties R pages/s within a working set of W pages,
 * a link of B bytes/s, each round sending the set the previous one left.
 * The traces are the shapes the issue measured (idle, a 1 GiB guest at
 * 16 pages/ms, a hot set that no round shrinks, a guest faster than the
 * link) and the edges (max rounds, a limit raised mid-way, a zero-length
 * round).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "vmm/migration/policy.h"

#define PAGE 4096u
#define WIRE (PAGE + 8u) /* a normal page on the wire: entry + data */

typedef struct Guest {
    uint64_t pages;       /* RAM */
    double rate;          /* pages dirtied per second */
    uint64_t working_set; /* pages the guest dirties (the same ones again) */
    double link;          /* bytes per second */
} Guest;

typedef struct Trace {
    unsigned rounds;
    MigDecision last;
    uint64_t expected_ms[64]; /* after each round */
    uint64_t waiting[64];
    unsigned throttle[64]; /* auto-converge's percentage after each round */
} Trace;

/* Pages dirtied (distinct) while a round of t seconds runs. */
static uint64_t dirtied(const Guest *g, double t)
{
    double d = g->rate * t;
    return d > (double)g->working_set ? g->working_set : (uint64_t)d;
}

static Trace run(const Guest *g, MigPolicy *p)
{
    Trace tr = { 0 };
    uint64_t sent = g->pages;
    for (;;) {
        uint64_t bytes = sent * WIRE;
        double t = (double)bytes / g->link;
        /* a throttled guest runs (and dirties) only part of the time */
        Guest slowed = *g;
        slowed.rate = g->rate * (100 - p->throttle_pct) / 100;
        uint64_t waiting = dirtied(&slowed, t);
        MigDecision d = mig_policy_after_round(p, sent, bytes, (uint64_t)(t * 1e9), waiting, PAGE);
        tr.expected_ms[tr.rounds] = p->expected_ms;
        tr.waiting[tr.rounds] = waiting;
        tr.throttle[tr.rounds] = p->throttle_pct;
        tr.rounds++;
        assert_true(tr.rounds < 64);
        if (d != MIG_NEXT_ROUND) {
            tr.last = d;
            return tr;
        }
        sent = waiting;
    }
}

/* An idle guest: nothing is dirty after round 0, the final round at once. */
static void idle(void **state)
{
    Guest g = { .pages = 65536, .rate = 0, .working_set = 0, .link = 1e9 };
    MigPolicy p;
    mig_policy_init(&p, 300, 30);
    Trace t = run(&g, &p);
    assert_int_equal(t.rounds, 1);
    assert_int_equal(t.last, MIG_FINAL);
    assert_int_equal(t.expected_ms[0], 0);
}

/* The 1 GiB row: 16 pages/ms over 512 MiB, 1 GiB/s, limit
 * 300 ms.  After round 0 the pause expected (~60 ms) is under the limit;
 * the old rule stopped there.  Rounds still halve the set: go on until
 * the pause is under a millisecond. */
static void one_gib_16_per_ms(void **state)
{
    Guest g = { .pages = 262144, .rate = 16000, .working_set = 131072, .link = 1073741824.0 };
    MigPolicy p;
    mig_policy_init(&p, 300, 30);
    Trace t = run(&g, &p);
    assert_true(t.expected_ms[0] > 30 && t.expected_ms[0] <= 300);
    assert_true(t.rounds >= 3);
    assert_int_equal(t.last, MIG_FINAL);
    assert_true(t.expected_ms[t.rounds - 1] < 1);
    for (unsigned i = 1; i < t.rounds; i++) /* each round paid: at least halved */
        assert_true(t.waiting[i] * 2 <= t.waiting[i - 1]);
}

/* A hot set the guest rewrites faster than any round: once the set stops
 * halving the pause cannot get smaller: stop at that round, not forced. */
static void hot_set(void **state)
{
    Guest g = { .pages = 65536, .rate = 1e9, .working_set = 2000, .link = 100e6 };
    MigPolicy p;
    mig_policy_init(&p, 300, 30);
    Trace t = run(&g, &p);
    assert_int_equal(t.rounds, 2);
    assert_int_equal(t.last, MIG_FINAL);
    assert_int_equal(t.waiting[1], 2000);
    assert_true(t.expected_ms[1] <= 300);
}

/* Faster than the link: over the limit and not shrinking: forced after
 * round 0 and MIG_POLICY_STALL_ROUNDS stalled rounds. */
static void faster_than_link(void **state)
{
    Guest g = { .pages = 262144, .rate = 1e6, .working_set = 131072, .link = 128e6 };
    MigPolicy p;
    mig_policy_init(&p, 300, 30);
    Trace t = run(&g, &p);
    assert_int_equal(t.last, MIG_FINAL_FORCED);
    assert_int_equal(t.rounds, 1 + MIG_POLICY_STALL_ROUNDS);
    assert_true(t.expected_ms[t.rounds - 1] > 300);
    assert_int_equal(p.throttle_pct, 0); /* no auto-converge: never throttled */
}

static void auto_converge_on(MigPolicy *p, unsigned initial, unsigned increment, unsigned max)
{
    p->auto_converge = true;
    p->throttle_initial = initial;
    p->throttle_increment = increment;
    p->throttle_max = max;
}

/* The same guest with auto-converge (20 + 10 per hot round, up to 99):
 * the throttle starts at the second hot round, rises by the increment
 * while the rounds stay hot, and the migration ends under the limit,
 * not forced, where the plain rule forced it after 4 rounds. */
static void faster_than_link_auto_converge(void **state)
{
    Guest g = { .pages = 262144, .rate = 1e6, .working_set = 131072, .link = 128e6 };
    MigPolicy p;
    mig_policy_init(&p, 300, 30);
    auto_converge_on(&p, 20, 10, 99);
    Trace t = run(&g, &p);
    assert_int_equal(t.last, MIG_FINAL);
    assert_true(t.expected_ms[t.rounds - 1] <= 300);
    assert_true(t.rounds > 1 + MIG_POLICY_STALL_ROUNDS);
    /* round 0 sent all of RAM: not hot; rounds 1 and 2 are: 0, 0, 20, 30, ... */
    assert_int_equal(t.throttle[0], 0);
    assert_int_equal(t.throttle[1], 0);
    assert_int_equal(t.throttle[2], 20);
    assert_int_equal(t.throttle[3], 30);
    for (unsigned i = 3; i < t.rounds; i++) {
        bool hot = t.waiting[i] * 2 > t.waiting[i - 1];
        unsigned want = hot ? t.throttle[i - 1] + 10 : t.throttle[i - 1];
        assert_int_equal(t.throttle[i], want > 99 ? 99 : want);
    }
    assert_true(t.throttle[t.rounds - 1] > 20 && t.throttle[t.rounds - 1] <= 99);
}

/* A recorded trace of (sent, left dirty) pairs, round by round, and the
 * throttle after each: a cool round between two hot ones restarts the
 * count; once throttling, a cool round keeps the percentage; the
 * increment stops at max-cpu-throttle, and a max lowered mid-way
 * clamps it at once. */
static void throttle_trace(void **state)
{
    static const struct {
        uint64_t sent, waiting;
        unsigned throttle;
    } rec[] = {
        { 65536, 8192, 0 }, /* round 0: all of RAM, not hot */
        { 8192, 8000, 0 },  /* hot 1 */
        { 8000, 3000, 0 },  /* cool: the count restarts */
        { 3000, 2900, 0 },  /* hot 1 */
        { 2900, 2900, 40 }, /* hot 2: initial */
        { 2900, 1000, 40 }, /* cool: stays */
        { 1000, 900, 65 },  /* hot: + increment */
        { 900, 800, 90 },   /* hot */
        { 800, 700, 95 },   /* hot: capped at max */
        { 700, 600, 95 },   /* hot, at max */
    };
    MigPolicy p;
    mig_policy_init(&p, 1, 100);
    auto_converge_on(&p, 40, 25, 95);
    for (size_t i = 0; i < sizeof(rec) / sizeof(rec[0]); i++) {
        /* one second a round: the pause expected stays over 1 ms */
        mig_policy_after_round(&p, rec[i].sent, rec[i].sent * WIRE, 1000000000ull, rec[i].waiting,
                               PAGE);
        assert_int_equal(p.throttle_pct, rec[i].throttle);
    }
    p.throttle_max = 50; /* migrate-set-parameters between rounds */
    mig_policy_after_round(&p, 600, 600 * WIRE, 1000000000ull, 100, PAGE);
    assert_int_equal(p.throttle_pct, 50);
}

/* Stalled rounds force the final round only once the throttle is at its
 * maximum: before that, each one raises the throttle instead. */
static void throttle_then_forced(void **state)
{
    MigPolicy p;
    mig_policy_init(&p, 10, 100);
    auto_converge_on(&p, 50, 20, 90);
    unsigned n = 0;
    MigDecision d = MIG_NEXT_ROUND;
    /* a set that never shrinks (the guest would not slow down) */
    while (d == MIG_NEXT_ROUND) {
        d = mig_policy_after_round(&p, 10000, 10000 * WIRE, 1000000000ull, 10000, PAGE);
        n++;
        assert_true(n < 20);
    }
    /* hot 1, hot 2 -> 50, 70, 90 (max): then 3 stalled rounds */
    assert_int_equal(d, MIG_FINAL_FORCED);
    assert_int_equal(p.throttle_pct, 90);
    assert_int_equal(n, 4 + MIG_POLICY_STALL_ROUNDS - 1);
}

/* Shrinking by a little more than a tenth each round but over the limit:
 * the rounds run to x-max-rounds, then the final one is forced. */
static void max_rounds(void **state)
{
    MigPolicy p;
    mig_policy_init(&p, 10, 5);
    uint64_t sent = 100000;
    MigDecision d = MIG_NEXT_ROUND;
    unsigned n = 0;
    while (d == MIG_NEXT_ROUND) {
        uint64_t waiting = sent * 8 / 10;
        d = mig_policy_after_round(&p, sent, sent * WIRE, 1000000000ull, waiting, PAGE);
        sent = waiting;
        n++;
        assert_true(n <= 5);
    }
    assert_int_equal(n, 5);
    assert_int_equal(d, MIG_FINAL_FORCED);
}

/* migrate-set-parameters between rounds: a limit raised over the pause
 * expected ends a hot-set migration that was not converging. */
static void limit_raised(void **state)
{
    MigPolicy p;
    mig_policy_init(&p, 10, 30);
    /* 10000 pages left at 100 MB/s: ~410 ms expected */
    assert_int_equal(mig_policy_after_round(&p, 20000, 20000 * WIRE, 820000000ull, 10000, PAGE),
                     MIG_NEXT_ROUND);
    p.downtime_limit_ms = 1000;
    assert_int_equal(mig_policy_after_round(&p, 10000, 10000 * WIRE, 410000000ull, 10000, PAGE),
                     MIG_FINAL);
    assert_int_equal(p.stalled, 0);
}

/* A round that sent nothing in no time: the rate floor, no division by 0. */
static void empty_round(void **state)
{
    MigPolicy p;
    mig_policy_init(&p, 300, 30);
    assert_true(mig_policy_rate(0, 0) >= MIG_POLICY_MIN_RATE);
    assert_int_equal(mig_policy_after_round(&p, 0, 0, 0, 0, PAGE), MIG_FINAL);
    /* 100 pages left, nothing measured: 100 * 4096 / 1e6 s = 409 ms */
    mig_policy_init(&p, 300, 30);
    assert_int_equal(mig_policy_after_round(&p, 100, 0, 0, 100, PAGE), MIG_NEXT_ROUND);
    assert_int_equal(p.expected_ms, 409);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(idle),           cmocka_unit_test(one_gib_16_per_ms),
        cmocka_unit_test(hot_set),        cmocka_unit_test(faster_than_link),
        cmocka_unit_test(max_rounds),     cmocka_unit_test(limit_raised),
        cmocka_unit_test(empty_round),    cmocka_unit_test(faster_than_link_auto_converge),
        cmocka_unit_test(throttle_trace), cmocka_unit_test(throttle_then_forced),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
