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
 *   - Over the limit, iterate; after MIG_POLICY_STALL_ROUNDS rounds that
 *     do not shrink the set by a tenth, or at `x-max-rounds`, the final
 *     round is forced (query-migrate: x-forced), whatever it costs.
 */
#ifndef STRATA_VMM_MIGRATION_POLICY_H
#define STRATA_VMM_MIGRATION_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#define MIG_POLICY_STALL_ROUNDS 3u /* rounds that may fail to shrink the set by 10% */
#define MIG_POLICY_MIN_RATE 1e6    /* bytes/s assumed at least (a stalled link) */

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

/* The rate the last decision assumed, bytes/s (>= MIG_POLICY_MIN_RATE). */
double mig_policy_rate(uint64_t bytes, uint64_t ns);

#endif
