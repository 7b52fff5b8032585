/* SPDX-License-Identifier: MIT */
/*
 * When the source's pre-copy stops: the decision after each round, apart
 * from the thread that sends (vmm/migration/source.c), so it can be tested
 * on recorded round traces (tests/migration/test_policy.c).
 *
 * The rule (docs/migration.md, "When the final round starts"):
 *   - The expected pause is the pages still dirty / the rate the last
 *     round achieved.  `downtime-limit` is a ceiling, not a target.
 *   - Under the limit, keep iterating while each round at least halves
 *     the dirty set: the next one then pauses the guest for at most half
 *     as long.  The first round that does not halve it has reached what
 *     the guest re-dirties during a round (its working set at this
 *     bandwidth): stop there, the least pause left to get.  A pause
 *     expected under 1 ms is not worth another round.
 *   - Over the limit, iterate (source.c ends such a round once what is
 *     left of it fits the limit, and reads the log again: `sent` is then
 *     the set the round started from, `waiting` what it left plus what
 *     the guest dirtied meanwhile); after MIG_POLICY_STALL_ROUNDS rounds that
 *     do not shrink the set by a tenth, or at `x-max-rounds`, the final
 *     round is forced (query-migrate: x-forced), whatever it costs.
 *   - With auto-converge, a round is "hot" when the guest dirtied more
 *     pages during it than half of what it sent.  The second hot round in
 *     a row starts throttling the vCPUs at cpu-throttle-initial percent;
 *     every further hot round adds cpu-throttle-increment, up to
 *     max-cpu-throttle.  A round that is not hot keeps the throttle where
 *     it is.  While the throttle can still rise, a round that does not
 *     shrink the set does not count towards forcing the final round.
 */
#ifndef STRATA_VMM_MIGRATION_POLICY_H
#define STRATA_VMM_MIGRATION_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#define MIG_POLICY_STALL_ROUNDS 3u /* rounds that may fail to shrink the set by 10% */
#define MIG_POLICY_MIN_RATE 1e6    /* bytes/s assumed at least (a stalled link) */
#define MIG_POLICY_HOT_ROUNDS 2u   /* hot rounds in a row that start the throttle */

typedef enum MigDecision {
    MIG_NEXT_ROUND,   /* send another round */
    MIG_FINAL,        /* start the final round: the pause is as small as it gets */
    MIG_FINAL_FORCED, /* start the final round: no convergence (stalled or max rounds) */
} MigDecision;

typedef struct MigPolicy {
    uint64_t downtime_limit_ms;
    unsigned max_rounds;
    /* what the rounds so far left (mig_policy_init clears it) */
    unsigned rounds;      /* rounds done */
    unsigned stalled;     /* rounds in a row over the limit that shrank < 10% */
    uint64_t expected_ms; /* the last round's expected pause */
    /* auto-converge (set before each call, like the limits) */
    bool auto_converge;
    unsigned throttle_initial, throttle_increment, throttle_max; /* percent */
    /* ...and what it decided */
    unsigned hot;          /* hot rounds in a row (dirtied > half of what they sent) */
    unsigned throttle_pct; /* how much the vCPUs are to be slowed down, percent */
} MigPolicy;

void mig_policy_init(MigPolicy *p, uint64_t downtime_limit_ms, unsigned max_rounds);

/*
 * After a round that sent `sent` pages (the dirty set it started from:
 * all of RAM in round 0), `bytes` on the wire in `ns` nanoseconds, and
 * left `waiting` pages of page_size bytes dirty: what comes next.  The limits may change
 * between rounds (migrate-set-parameters): set p->downtime_limit_ms and
 * p->max_rounds before the call.
 */
MigDecision mig_policy_after_round(MigPolicy *p, uint64_t sent, uint64_t bytes, uint64_t ns,
                                   uint64_t waiting, uint64_t page_size);

/* The auto-converge part of mig_policy_after_round alone: updates
 * p->hot and p->throttle_pct after a round that sent `sent` pages and
 * left `waiting` dirty. */
void mig_policy_throttle(MigPolicy *p, uint64_t sent, uint64_t waiting);

/* The rate the last decision assumed, bytes/s (>= MIG_POLICY_MIN_RATE). */
double mig_policy_rate(uint64_t bytes, uint64_t ns);

#endif
