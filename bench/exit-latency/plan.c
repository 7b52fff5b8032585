/* SPDX-License-Identifier: MIT */
/* exit-latency: the plan driver (see plan.h). */
#include "bench/exit-latency/plan.h"
#include "bench/exit-latency/bench.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t bench_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

size_t bench_plan_add(BenchPlan *p, uint32_t cmd, uint32_t count)
{
    BenchStep *s = realloc(p->steps, (p->n + 1) * sizeof(*s));

    if (!s)
        abort();
    p->steps = s;
    p->steps[p->n] = (BenchStep){ .cmd = cmd, .count = count };
    return p->n++;
}

uint32_t bench_plan_sync(BenchPlan *p, uint32_t phase)
{
    BenchStep *s = p->cur < p->n ? &p->steps[p->cur] : NULL;

    switch (phase) {
    case PH_NEXT:
        return s ? s->cmd : CMD_DONE;
    case PH_ARG:
        p->t0 = bench_now_ns();
        return s ? s->count : 0;
    case PH_END:
        if (s) {
            s->ns = bench_now_ns() - p->t0;
            if (p->on_end)
                p->on_end(p, s, p->opaque);
            p->cur++;
        }
        return 0;
    default:
        return 0;
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double stat_of(const BenchPlan *p, uint32_t cmd, double base, bool min)
{
    double v[256];
    size_t n = 0;

    for (size_t i = 0; i < p->n && n < 256; i++) {
        const BenchStep *s = &p->steps[i];

        if (s->cmd == cmd && s->ns)
            v[n++] = ((double)s->ns - base) / (s->count ? s->count : 1);
    }
    if (!n)
        return 0;
    qsort(v, n, sizeof(v[0]), cmp_double);
    if (min)
        return v[0];
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double bench_plan_ns_per_iter(const BenchPlan *p, uint32_t cmd)
{
    return stat_of(p, cmd, stat_of(p, CMD_NONE, 0, false), false);
}

double bench_plan_ns_per_iter_min(const BenchPlan *p, uint32_t cmd)
{
    return stat_of(p, cmd, stat_of(p, CMD_NONE, 0, false), true);
}

void bench_plan_free(BenchPlan *p)
{
    free(p->steps);
    memset(p, 0, sizeof(*p));
}
