/* SPDX-License-Identifier: MIT */
/*
 * The dirty-log stress (mig-test --dirty-stress SECONDS): what a migration
 * does to a running guest's memory, without the migration around it, as
 * fast as the control socket allows, for SECONDS.  A self-checking dirtying
 * guest (dirty.c: each page holds the pass that last wrote it, checked
 * before the next pass writes it) runs while the test, in a loop:
 *   - switches the migration client's dirty log on (KVM slots gain
 *     KVM_MEM_LOG_DIRTY_PAGES: every guest page write-protected);
 *   - takes the marks 8 times (query-dirty-log reset: KVM_GET_DIRTY_LOG +
 *     KVM_CLEAR_DIRTY_LOG, or the dirty rings harvested and reset; each
 *     write-protects the pages it reports again);
 *   - every 4th time round, stops and continues the guest (each vCPU kicked
 *     out of KVM_RUN, its pending I/O completed, run again);
 *   - switches the log off again (KVM recovers the huge mappings).
 * Two guests, one after the other: one vCPU with the slot bitmaps
 * (--dirty-ring off, the dirty log of the Dec 1 migrations in issue 11), and
 * two vCPUs with the default log (the dirty ring where KVM has one).
 * Passes if each strata keeps running its guest throughout (no triple
 * fault, no failed page check: either ends strata), the log reports the
 * guest's writes, the guest's pass counter goes on, and quit ends it with
 * status 0.  Each round's figures are printed.
 */
#include <string.h>

#include "mig_harness.h"

static json_int_t dirty_pages(json_t *r)
{
    json_t *e = json_array_get(r, 0);
    json_t *n = json_object_get(json_object_get(e, "dirty-pages"), "migration");
    CHECK(json_is_integer(n), "query-dirty-log: no migration count: %s", json_dumps(r, 0));
    return json_integer_value(n);
}

static void alive(Vm *vm, const char *what)
{
    int st = vm_reap(vm);
    CHECK(st < 0, "strata ended (status %d) during %s; its log:", st, what);
}

/* One guest under the stress for `seconds`. */
static void stress_one(const char *name, const char *elf, const char *cpus, const char *ring,
                       double seconds)
{
    vm_cpus = cpus;
    vm_dirty_ring = ring;
    pass_addr = elf_symbol(elf, "mig_pass");
    Vm vm;
    start_vm(&vm, name, elf, "256M", NULL);
    vm_connect(&vm);
    uint64_t p0 = wait_pass(&vm, 2, 60000);
    unsigned long long cycles = 0, takes = 0, stops = 0, marked = 0;
    double t0 = now_s();
    while (now_s() - t0 < seconds) {
        json_decref(cmd_ok(&vm, "set-dirty-log", "{\"enable\": true}"));
        for (int k = 0; k < 8; k++) {
            json_t *r = cmd_ok(&vm, "query-dirty-log", "{\"reset\": true}");
            marked += (unsigned long long)dirty_pages(r);
            json_decref(r);
            takes++;
            if (k == 3 && cycles % 4 == 0) {
                json_decref(cmd_ok(&vm, "stop", NULL));
                json_decref(cmd_ok(&vm, "cont", NULL));
                stops++;
            }
        }
        json_decref(cmd_ok(&vm, "set-dirty-log", "{\"enable\": false}"));
        cycles++;
        alive(&vm, "the dirty-log stress");
    }
    double dt = now_s() - t0;
    uint64_t p1 = read_u64(&vm, pass_addr);
    /* the guest still runs and checks its pages after the last cycle */
    uint64_t p2 = wait_pass(&vm, p1 + 1, 60000);
    printf("%s: %.1f s, %llu log on/off cycles, %llu takes (%llu pages marked), %llu stop/cont; "
           "guest pass %llu -> %llu -> %llu\n",
           name, dt, cycles, takes, marked, stops, (unsigned long long)p0, (unsigned long long)p1,
           (unsigned long long)p2);
    CHECK(marked > 0, "%s: the dirty log never reported the guest's writes", name);
    CHECK(p1 > p0, "%s: the guest made no pass under the stress", name);
    json_decref(cmd_ok(&vm, "quit", NULL));
    CHECK(vm_wait(&vm, 10000) == 0, "%s: quit", name);
    qc_close(vm.c);
    vm_dirty_ring = NULL;
    vm_cpus = "1";
}

int dirty_stress(const char *one_elf, const char *smp_elf, unsigned seconds)
{
    stress_one("stress-bitmap", one_elf, "1", "off", seconds / 2.0);
    stress_one("stress-default-2cpus", smp_elf, "2", NULL, seconds / 2.0);
    printf("PASS: dirty-log stress (%u s: 1 vCPU with the bitmaps, 2 vCPUs with the default "
           "log)\n",
           seconds);
    return 0;
}
