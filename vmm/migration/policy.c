/* SPDX-License-Identifier: MIT */
/* When the pre-copy stops (see policy.h for the rule). */
#include "vmm/migration/policy.h"

void mig_policy_init(MigPolicy *p, uint64_t downtime_limit_ms, unsigned max_rounds)
{
    *p = (MigPolicy){ .downtime_limit_ms = downtime_limit_ms, .max_rounds = max_rounds };
}

double mig_policy_rate(uint64_t bytes, uint64_t ns)
{
    double bw = ns ? (double)bytes * 1e9 / (double)ns : 0;
    return bw < MIG_POLICY_MIN_RATE ? MIG_POLICY_MIN_RATE : bw;
}

void mig_policy_throttle(MigPolicy *p, uint64_t sent, uint64_t waiting)
{
    if (!p->auto_converge) {
        p->hot = 0;
        p->throttle_pct = 0;
        return;
    }
    unsigned max = p->throttle_max;
    if (waiting * 2 <= sent) {
        p->hot = 0;
    } else if (p->throttle_pct) {
        p->throttle_pct += p->throttle_increment;
    } else if (++p->hot >= MIG_POLICY_HOT_ROUNDS) {
        p->throttle_pct = p->throttle_initial;
    }
    if (p->throttle_pct > max) /* max-cpu-throttle may have been lowered */
        p->throttle_pct = max;
}

MigDecision mig_policy_after_round(MigPolicy *p, uint64_t sent, uint64_t bytes, uint64_t ns,
                                   uint64_t waiting, uint64_t page_size)
{
    double bw = mig_policy_rate(bytes, ns);
    double expect = (double)waiting * (double)page_size * 1000.0 / bw;
    p->expected_ms = (uint64_t)expect;
    p->rounds++;
    mig_policy_throttle(p, sent, waiting);
    bool last_allowed = p->max_rounds && p->rounds >= p->max_rounds;
    if (expect <= (double)p->downtime_limit_ms) {
        p->stalled = 0;
        /* the round halved the set: the next one halves the pause again */
        bool halving = waiting * 2 <= sent;
        if (expect < 1.0 || !halving || last_allowed)
            return MIG_FINAL;
        return MIG_NEXT_ROUND;
    }
    /* a throttle that can still rise may yet bring the set down */
    bool can_throttle = p->auto_converge && p->throttle_pct < p->throttle_max;
    p->stalled = waiting * 10 >= sent * 9 && !can_throttle ? p->stalled + 1 : 0;
    if (last_allowed || p->stalled >= MIG_POLICY_STALL_ROUNDS)
        return MIG_FINAL_FORCED;
    return MIG_NEXT_ROUND;
}
