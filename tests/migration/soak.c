/* SPDX-License-Identifier: MIT */
/*
 * The migration soak (mig-test --soak N): see soak() below and
 * scripts/soak-migration.sh for the long run.
 */
#include <string.h>

#include "mig_harness.h"

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

/* The soak: a guest whose 2 vCPUs rewrite and check every word of 32 MiB
 * (dirty.c, MIG_SMP) migrated from strata to strata `hops` times.  Each hop
 * must complete with the destination's RAM verified against the source's
 * CRC (x-verify-ram), the guest's pass counter going on there with its own
 * page checks passing, and the source gone with status 0. */
int soak(const char *smp_elf, unsigned hops)
{
    pass_addr = elf_symbol(smp_elf, "mig_pass");
    vm_cpus = "2";
    Vm src;
    start_vm(&src, "soak-src", smp_elf, "256M", NULL);
    vm_connect(&src);
    wait_pass(&src, 2, 60000);
    long long *down = calloc(hops, sizeof(*down)), *total = calloc(hops, sizeof(*total));
    CHECK(down && total, "out of memory");
    double t0 = now_s();
    for (unsigned h = 0; h < hops; h++) {
        char name[32];
        snprintf(name, sizeof(name), "hop%u", h + 1);
        json_t *q = migrate_ok(&src, name, smp_elf, "{\"max-bandwidth\": 1073741824}", true,
                               180000);
        down[h] = json_integer_value(json_object_get(q, "downtime"));
        total[h] = json_integer_value(json_object_get(q, "total-time"));
        json_decref(q);
    }
    double dt = now_s() - t0;
    uint64_t last = read_u64(&src, pass_addr);
    json_decref(cmd_ok(&src, "quit", NULL));
    CHECK(vm_wait(&src, 10000) == 0, "quit");
    qc_close(src.c);
    qsort(down, hops, sizeof(*down), cmp_ll);
    qsort(total, hops, sizeof(*total), cmp_ll);
    printf("soak: %u hops in %.1f s, 2 vCPUs dirtying 32 MiB; downtime ms min %lld median %lld "
           "max %lld; total-time ms min %lld median %lld max %lld; guest pass %llu at the end\n",
           hops, dt, down[0], down[hops / 2], down[hops - 1], total[0], total[hops / 2],
           total[hops - 1], (unsigned long long)last);
    printf("PASS: migration soak (%u hops, every page verified by the guest and by x-verify-ram)\n",
           hops);
    free(down);
    free(total);
    return 0;
}
