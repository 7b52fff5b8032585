/* SPDX-License-Identifier: MIT */
/* exit-latency: the list of timed guest loops, shared by both hosts. */
#ifndef STRATA_BENCH_PLAN_H
#define STRATA_BENCH_PLAN_H

#include <stddef.h>
#include <stdint.h>

typedef struct BenchStep {
    uint32_t cmd;   /* CMD_* */
    uint32_t count; /* loop iterations */
    uint64_t ns;    /* measured: PH_ARG to PH_END */
} BenchStep;

typedef struct BenchPlan BenchPlan;
struct BenchPlan {
    BenchStep *steps;
    size_t n, cur;
    uint64_t t0;
    /* called at PH_END after the step's time is taken (may be NULL) */
    void (*on_end)(BenchPlan *p, BenchStep *s, void *opaque);
    void *opaque;
};

/* Monotonic time in nanoseconds. */
uint64_t bench_now_ns(void);
/* Appends a step; returns its index. */
size_t bench_plan_add(BenchPlan *p, uint32_t cmd, uint32_t count);
/* The SYNC handler both hosts use: answers the guest's phase. */
uint32_t bench_plan_sync(BenchPlan *p, uint32_t phase);
/* Median over the steps of `cmd` of (ns - the median CMD_NONE ns) / count. */
double bench_plan_ns_per_iter(const BenchPlan *p, uint32_t cmd);
/* The same, the smallest instead of the median (least disturbed by load). */
double bench_plan_ns_per_iter_min(const BenchPlan *p, uint32_t cmd);
/* Frees the steps. */
void bench_plan_free(BenchPlan *p);

/* Raw KVM host (raw.c): runs elf_path's guest through the plan with its own
 * minimal VM and KVM_RUN loop; 0 or -1 after printing why. */
int raw_run(const char *elf_path, BenchPlan *plan, uint64_t *pio_exits, uint64_t *mmio_exits);

#endif
