/* SPDX-License-Identifier: MIT */
/*
 * Guest for the migration tests and benchmark (a PVH ELF QEMU boots too).
 *
 * MIG_IDLE: counts in mig_counter and touches nothing else.
 * MIG_PIO: counts, writing each count to the test device's REPORT port.
 * Otherwise: rewrites MIG_MIB MiB from 16 MiB up, page by page, pass after
 * pass; before writing pass n into a page it checks that the page still
 * holds pass n-1 (first and last word).  A page that a migration lost or
 * tore is found by the next pass on the destination: the guest reports
 * 0xbad00000 | page and exits with code 1.  mig_pass counts finished
 * passes (the host reads it with `xp`).  MIG_PACE_PAGES, if not 0, makes
 * it write at most that many pages per millisecond (TSC-paced; rate set
 * for the benchmark's fixed dirty rate).
 *
 * MIG_SMP=N (the soak's guest): N CPUs rewrite the region together, each
 * its own 1/N of the pages, every word of every page: word i of page p in
 * pass n holds full_word(n, p, i).  Before rewriting a page a CPU checks
 * all 512 words for pass n-1, so a page lost, torn or stale anywhere is
 * found; then 0xbad00000 | page and exit code 1, or 0xbadc0000 | cpus if
 * the APs did not all come up.  mig_cpu_pass[c] counts CPU c's finished
 * passes and the BSP keeps mig_pass = the least of them.
 */
#include "guest.h"

#ifndef MIG_MIB
#define MIG_MIB 32
#endif
#ifndef MIG_PACE_PAGES
#define MIG_PACE_PAGES 0
#endif

#define MIG_BASE (16ull << 20)

volatile uint64_t mig_pass;
volatile uint64_t mig_counter;
volatile uint64_t mig_tsc_per_ms;

/* (each is unused in some of this file's guest variants) */
static inline __attribute__((unused)) uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (uint64_t)hi << 32 | lo;
}

static inline __attribute__((unused)) uint64_t pattern(uint64_t pass, uint64_t page)
{
    return pass << 32 | page;
}

#ifdef MIG_SMP
volatile uint64_t mig_cpu_pass[MIG_SMP];

static inline uint64_t full_word(uint64_t pass, uint64_t page, uint64_t i)
{
    return pattern(pass, page) ^ (i * 0x9e3779b97f4a7c15ull);
}

/* CPU cpu's share of the region, pass after pass (never returns). */
static void smp_dirty(unsigned cpu)
{
    const uint64_t pages = (uint64_t)MIG_MIB * 256, share = pages / MIG_SMP;
    const uint64_t first = cpu * share, end = cpu == MIG_SMP - 1 ? pages : first + share;
    for (uint64_t pass = 1;; pass++) {
        for (uint64_t p = first; p < end; p++) {
            volatile uint64_t *w = (volatile uint64_t *)(MIG_BASE + p * 4096);
            for (uint64_t i = 0; pass > 1 && i < 512; i++)
                if (w[i] != full_word(pass - 1, p, i)) {
                    guest_report(0xbad00000u | (uint32_t)(p & 0xfffff));
                    guest_exit(1);
                }
            for (uint64_t i = 0; i < 512; i++)
                w[i] = full_word(pass, p, i);
        }
        mig_cpu_pass[cpu] = pass;
        if (cpu == 0) {
            uint64_t least = pass;
            for (unsigned c = 1; c < MIG_SMP; c++)
                if (mig_cpu_pass[c] < least)
                    least = mig_cpu_pass[c];
            mig_pass = least;
        }
    }
}

void guest_ap_main(unsigned cpu)
{
    smp_dirty(cpu);
}
#endif

int guest_main(void)
{
    guest_report(0xd1a7);
#if defined(MIG_SMP)
    unsigned up = guest_start_aps(MIG_SMP);
    if (up != MIG_SMP) {
        guest_report(0xbadc0000u | up);
        guest_exit(1);
    }
    smp_dirty(0);
#elif defined(MIG_IDLE)
    for (;;)
        mig_counter++;
#elif defined(MIG_PIO)
    /* a port write per count: the vCPU is nearly always paused right
     * after a PIO exit, which the state save must complete */
    for (;;)
        guest_report((uint32_t)++mig_counter);
#else
    const uint64_t pages = (uint64_t)MIG_MIB * 256;
    uint64_t budget = 0, last = rdtsc();
    const uint64_t tsc_ms = mig_tsc_per_ms ? mig_tsc_per_ms : 2000000; /* ~2 GHz guess */
    for (uint64_t pass = 1;; pass++) {
        for (uint64_t p = 0; p < pages; p++) {
            volatile uint64_t *w = (volatile uint64_t *)(MIG_BASE + p * 4096);
            if (pass > 1 && (w[0] != pattern(pass - 1, p) || w[511] != ~pattern(pass - 1, p))) {
                guest_report(0xbad00000u | (uint32_t)(p & 0xfffff));
                guest_exit(1);
            }
            w[0] = pattern(pass, p);
            w[511] = ~pattern(pass, p);
            if (MIG_PACE_PAGES) {
                while (!budget) {
                    uint64_t now = rdtsc();
                    if (now - last >= tsc_ms) {
                        budget = MIG_PACE_PAGES;
                        last = now;
                    }
                }
                budget--;
            }
        }
        mig_pass = pass;
    }
#endif
    return 0;
}
