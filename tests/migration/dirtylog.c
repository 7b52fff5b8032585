/* SPDX-License-Identifier: MIT */
/*
 * The dirty log's two sources (mig-test --dirty-log): a strata with the
 * default --dirty-ring (auto: KVM's dirty ring where the host offers it)
 * and one with --dirty-ring off (the slot bitmaps).  For each:
 *   - x-query-stats' dirty-log names the mode (and the ring's size);
 *   - calc-dirty-rate refuses what it cannot do (page-sampling, the other
 *     log's mode, a bad calc-time, sample-pages outside page-sampling, a
 *     second measurement while one runs), then measures the dirtying guest
 *     (dirty.c, 32 MiB rewritten pass after pass): a rate above zero, per
 *     vCPU in dirty-ring mode (their sum is the VM's), none in dirty-bitmap
 *     mode; the idle guest measures 0 MB/s;
 *   - a live migration of the dirtying guest completes with every page
 *     verified (by the guest on the destination and x-verify-ram), and
 *     query-migrate's x-dirty-log says which log it read and what it cost.
 * A small ring (--dirty-ring 256: the vCPU exits full over and over) must
 * migrate with every page verified too.  Where the host has no dirty ring
 * the ring parts are skipped (said so) and the bitmap parts still run.
 */
#include <string.h>

#include "kvm/kvm.h"
#include "mig_harness.h"

static json_int_t num(json_t *o, const char *key)
{
    json_t *x = json_object_get(o, key);
    CHECK(json_is_integer(x), "no integer %s", key);
    return json_integer_value(x);
}

static const char *str(json_t *o, const char *key)
{
    json_t *x = json_object_get(o, key);
    CHECK(json_is_string(x), "no string %s", key);
    return json_string_value(x);
}

/* True if this host's /dev/kvm gives a default VM the dirty ring. */
static bool host_has_ring(void)
{
    KvmVm *vm;
    KvmVmConfig cfg = KVM_VM_CONFIG_DEFAULT;
    CHECK(kvm_vm_create(&cfg, &vm) == 0, "kvm_vm_create");
    bool ring = kvm_vm_dirty_ring_size(vm) != 0;
    kvm_vm_destroy(vm);
    return ring;
}

/* x-query-stats' dirty-log must name mode (and ring entries). */
static void check_stats_mode(Vm *vm, const char *mode, json_int_t ring)
{
    json_t *s = cmd_ok(vm, "x-query-stats", NULL);
    json_t *d = json_object_get(s, "dirty-log");
    CHECK(json_is_object(d), "x-query-stats: no dirty-log");
    CHECK(!strcmp(str(d, "mode"), mode), "x-query-stats: dirty-log mode %s, expected %s",
          str(d, "mode"), mode);
    CHECK(num(d, "ring-size") == ring, "x-query-stats: ring-size %lld, expected %lld",
          (long long)num(d, "ring-size"), (long long)ring);
    json_decref(s);
}

/* Measures for ms in mode; the measured query-dirty-rate (new ref). */
static json_t *measure(Vm *vm, const char *mode, unsigned ms)
{
    char args[160];
    snprintf(args, sizeof(args),
             "{\"calc-time\": %u, \"calc-time-unit\": \"ms\", \"mode\": \"%s\"}", ms, mode);
    json_decref(cmd_ok(vm, "calc-dirty-rate", args));
    json_t *q = cmd_ok(vm, "query-dirty-rate", NULL);
    /* QEMU's answer while it measures: status, mode and the window */
    CHECK(!strcmp(str(q, "mode"), mode), "query-dirty-rate mode %s", str(q, "mode"));
    CHECK(num(q, "calc-time") == ms && !strcmp(str(q, "calc-time-unit"), "ms"),
          "query-dirty-rate: calc-time %lld %s", (long long)num(q, "calc-time"),
          str(q, "calc-time-unit"));
    if (!strcmp(str(q, "status"), "measuring")) {
        CHECK(!json_object_get(q, "dirty-rate"), "a dirty-rate while measuring");
        cmd_refused(vm, "calc-dirty-rate", args, "already being measured");
    }
    while (strcmp(str(q, "status"), "measured")) { /* ctest's timeout catches a hang */
        CHECK(!strcmp(str(q, "status"), "measuring"), "status %s", str(q, "status"));
        json_decref(q);
        msleep(50);
        q = cmd_ok(vm, "query-dirty-rate", NULL);
    }
    json_t *s = cmd_ok(vm, "query-dirty-rate", "{\"calc-time-unit\": \"s\"}");
    CHECK(num(s, "calc-time") == ms / 1000 && !strcmp(str(s, "calc-time-unit"), "s"),
          "query-dirty-rate in s: %lld", (long long)num(s, "calc-time"));
    json_decref(s);
    return q;
}

static void refusals(Vm *vm, bool ring)
{
    cmd_refused(vm, "calc-dirty-rate", "{\"calc-time\": 1}", "page-sampling is not supported");
    cmd_refused(vm, "calc-dirty-rate", "{\"calc-time\": 1, \"mode\": \"page-sampling\"}",
                "page-sampling is not supported");
    cmd_refused(vm, "calc-dirty-rate",
                ring ? "{\"calc-time\": 1, \"mode\": \"dirty-bitmap\"}"
                     : "{\"calc-time\": 1, \"mode\": \"dirty-ring\"}",
                ring ? "mode dirty-bitmap is not enabled" : "mode dirty-ring is not enabled");
    const char *mode = ring ? "dirty-ring" : "dirty-bitmap";
    char a[160];
    snprintf(a, sizeof(a), "{\"calc-time\": 0, \"mode\": \"%s\"}", mode);
    cmd_refused(vm, "calc-dirty-rate", a, "out of range");
    snprintf(a, sizeof(a), "{\"calc-time\": 61, \"mode\": \"%s\"}", mode);
    cmd_refused(vm, "calc-dirty-rate", a, "out of range");
    snprintf(a, sizeof(a), "{\"calc-time\": 1, \"mode\": \"%s\", \"sample-pages\": 512}", mode);
    cmd_refused(vm, "calc-dirty-rate", a, "only in page-sampling mode");
    cmd_refused(vm, "calc-dirty-rate", "{\"calc-time\": 1, \"mode\": \"fast\"}",
                "does not accept value 'fast'");
    cmd_refused(vm, "calc-dirty-rate",
                "{\"calc-time\": 1, \"calc-time-unit\": \"h\", \"mode\": \"dirty-ring\"}",
                "does not accept value 'h'");
}

static json_int_t param(Vm *vm, const char *name)
{
    json_t *p = cmd_ok(vm, "query-migrate-parameters", NULL);
    json_int_t r = num(p, name);
    json_decref(p);
    return r;
}

static unsigned limit_polls; /* query-migrate replies with x-dirty-limit */
static json_int_t limit_peak;

static void watch_limit(json_t *q)
{
    json_t *l = json_object_get(q, "x-dirty-limit");
    if (!l)
        return;
    CHECK(num(l, "vcpu-dirty-limit") == 8, "x-dirty-limit: vcpu-dirty-limit %lld",
          (long long)num(l, "vcpu-dirty-limit"));
    json_t *v0 = json_array_get(json_object_get(l, "vcpus"), 0);
    CHECK(v0, "x-dirty-limit: no vcpus");
    limit_polls++;
    if (num(v0, "throttle-percentage") > limit_peak)
        limit_peak = num(v0, "throttle-percentage");
}

/* dirty-limit (QEMU 8.1): parameters, the capability's rules, and a
 * migration over a link the guest outruns, limited, every page verified. */
static void dirty_limit(Vm *src)
{
    CHECK(param(src, "vcpu-dirty-limit") == 1, "vcpu-dirty-limit default");
    CHECK(param(src, "x-vcpu-dirty-limit-period") == 1000, "x-vcpu-dirty-limit-period default");
    cmd_refused(src, "migrate-set-parameters", "{\"vcpu-dirty-limit\": 0}", "expects an integer");
    cmd_refused(src, "migrate-set-parameters", "{\"x-vcpu-dirty-limit-period\": 1001}",
                "expects an integer");
    json_decref(cmd_ok(src, "migrate-set-parameters",
                       "{\"vcpu-dirty-limit\": 8, \"x-vcpu-dirty-limit-period\": 100}"));
    CHECK(param(src, "vcpu-dirty-limit") == 8 && param(src, "x-vcpu-dirty-limit-period") == 100,
          "dirty-limit parameters did not take");
    cmd_refused(src, "migrate-set-capabilities",
                "{\"capabilities\": [{\"capability\": \"dirty-limit\", \"state\": true}, "
                "{\"capability\": \"auto-converge\", \"state\": true}]}",
                "conflicts with auto-converge");
    json_decref(cmd_ok(src, "migrate-set-capabilities",
                       "{\"capabilities\": [{\"capability\": \"dirty-limit\", \"state\": "
                       "true}]}"));
    limit_polls = 0;
    limit_peak = 0;
    mig_poll_hook = watch_limit;
    json_t *q = migrate_ok(src, "dst-limit", guest_elf,
                           "{\"max-bandwidth\": 33554432, \"downtime-limit\": 50, "
                           "\"x-verify-ram\": false, \"x-max-rounds\": 30}",
                           true, 300000);
    mig_poll_hook = NULL;
    printf("dirty-limit: %lld rounds, downtime %lld ms, forced %s; x-dirty-limit in %u replies, "
           "vCPU 0 throttled up to %lld%%\n",
           (long long)num(q, "x-rounds"), (long long)num(q, "downtime"),
           json_is_true(json_object_get(q, "x-forced-final-round")) ? "yes" : "no", limit_polls,
           (long long)limit_peak);
    CHECK(limit_polls > 0 && limit_peak > 0, "dirty-limit: the limit never showed");
    CHECK(!json_object_get(q, "x-dirty-limit"), "dirty-limit: still in force after the end");
    json_decref(q);
}

/* One VM of the given log: stats, refusals, rates, a migration. */
static void one_mode(const char *dirty_ring, bool ring, json_int_t ring_size)
{
    const char *mode = ring ? "dirty-ring" : "dirty-bitmap";
    const char *log_mode = ring ? "ring" : "bitmap";
    vm_dirty_ring = dirty_ring;
    char name[32];

    /* the idle guest: nothing but its counter */
    Vm idle;
    snprintf(name, sizeof(name), "idle-%s", log_mode);
    start_vm(&idle, name, idle_elf, "128M", NULL);
    vm_connect(&idle);
    json_t *q = cmd_ok(&idle, "query-dirty-rate", NULL);
    CHECK(!strcmp(str(q, "status"), "unstarted"), "query-dirty-rate before: %s", str(q, "status"));
    json_decref(q);
    q = measure(&idle, mode, 500);
    json_int_t idle_rate = num(q, "dirty-rate");
    printf("%s: idle guest: %lld MB/s\n", mode, (long long)idle_rate);
    CHECK(idle_rate <= 1, "%s: the idle guest dirties %lld MB/s", mode, (long long)idle_rate);
    json_decref(q);
    json_decref(cmd_ok(&idle, "quit", NULL));
    vm_wait(&idle, 10000);

    Vm src;
    snprintf(name, sizeof(name), "src-%s", log_mode);
    start_vm(&src, name, guest_elf, "256M", NULL);
    vm_connect(&src);
    wait_pass(&src, 2, 60000);
    check_stats_mode(&src, log_mode, ring_size);
    refusals(&src, ring);
    if (!ring)
        cmd_refused(&src, "migrate-set-capabilities",
                    "{\"capabilities\": [{\"capability\": \"dirty-limit\", \"state\": true}]}",
                    "dirty-limit requires KVM with accelerator property");

    q = measure(&src, mode, 500);
    json_int_t rate = num(q, "dirty-rate");
    json_t *vr = json_object_get(q, "vcpu-dirty-rate");
    printf("%s: dirtying guest: %lld MB/s\n", mode, (long long)rate);
    CHECK(rate > 0, "%s: the dirtying guest measured %lld MB/s", mode, (long long)rate);
    if (ring) {
        CHECK(json_is_array(vr) && json_array_size(vr) == 1, "dirty-ring: vcpu-dirty-rate");
        json_t *v0 = json_array_get(vr, 0);
        CHECK(num(v0, "id") == 0, "vcpu-dirty-rate id");
        json_int_t r0 = num(v0, "dirty-rate");
        CHECK(r0 > 0 && r0 >= rate - 1 && r0 <= rate + 1,
              "dirty-ring: vCPU 0 dirtied %lld MB/s, the VM %lld", (long long)r0, (long long)rate);
    } else {
        CHECK(!vr, "dirty-bitmap: a vcpu-dirty-rate");
    }
    json_decref(q);

    /* a migration reads the same log, and every page arrives */
    json_t *m = migrate_ok(&src, ring ? "dst-ring" : "dst-bitmap", guest_elf, NULL, true, 300000);
    json_t *x = json_object_get(m, "x-dirty-log");
    CHECK(json_is_object(x), "query-migrate: no x-dirty-log");
    CHECK(!strcmp(str(x, "mode"), log_mode), "x-dirty-log mode %s", str(x, "mode"));
    if (ring)
        CHECK(num(x, "ring-size") == ring_size, "x-dirty-log ring-size %lld",
              (long long)num(x, "ring-size"));
    else
        CHECK(!json_object_get(x, "ring-size"), "x-dirty-log: a ring-size without the ring");
    json_int_t syncs = num(x, "syncs"), us = num(x, "sync-us"), pages = num(x, "pages");
    CHECK(syncs > 0 && pages > 0, "x-dirty-log: %lld syncs, %lld pages", (long long)syncs,
          (long long)pages);
    printf("%s: migration read %lld pages in %lld syncs, %lld us in all (%.1f us a sync)", log_mode,
           (long long)pages, (long long)syncs, (long long)us, (double)us / (double)syncs);
    if (ring)
        printf("; %lld ring-full exits harvested in %lld us", (long long)num(x, "ring-full"),
               (long long)num(x, "ring-full-us"));
    printf("\n");
    json_decref(m);
    /* src is the destination now: it runs the guest with its own log */
    check_stats_mode(&src, log_mode, ring_size);
    json_decref(cmd_ok(&src, "quit", NULL));
    vm_wait(&src, 10000);
    vm_dirty_ring = NULL;
}

/* query-migrate's dirty-pages-rate against a guest of known pace
 * (mig-r4x64: at most 4 pages a millisecond, each a different page of
 * 64 MiB until the pass wraps after 4 s): over a link capped at 128 MiB/s
 * with a 50 ms downtime-limit, the rounds after the first end early with
 * the pages that fit the limit kept back, which must not count as dirtied
 * again (they did: 1 600 kept pages over a round of a few milliseconds
 * read as hundreds of thousands of pages a second).  The reported rate
 * must be within a factor of 4 of the pace, either way. */
static void dirty_pages_rate(void)
{
    const char *elf = getenv("MIG_PACED_ELF") ? getenv("MIG_PACED_ELF") : PACED_ELF;
    uint64_t dirty_pass_addr = pass_addr;
    pass_addr = elf_symbol(elf, "mig_pass"); /* its own layout */
    Vm src;
    start_vm(&src, "src-paced", elf, "256M", NULL);
    vm_connect(&src);
    /* one whole pass first (4 s): the first round then sends 64 MiB, half
     * a second over the link */
    wait_pass(&src, 1, 60000);
    json_t *m = migrate_ok(&src, "dst-paced", elf,
                           "{\"max-bandwidth\": 134217728, \"downtime-limit\": 50}", true, 300000);
    json_int_t rate = num(json_object_get(m, "ram"), "dirty-pages-rate");
    json_int_t rounds = num(m, "x-rounds");
    printf("paced guest (4 pages/ms): dirty-pages-rate %lld pages/s over %lld rounds\n",
           (long long)rate, (long long)rounds);
    CHECK(rounds >= 2, "the capped migration of the paced guest took %lld round(s)",
          (long long)rounds);
    CHECK(rate >= 1000 && rate <= 16000,
          "dirty-pages-rate %lld pages/s for a guest dirtying 4000 pages/s", (long long)rate);
    json_decref(m);
    json_decref(cmd_ok(&src, "quit", NULL));
    vm_wait(&src, 10000);
    pass_addr = dirty_pass_addr;
}

int dirty_log_suite(void)
{
    bool ring = host_has_ring();
    dirty_pages_rate();
    one_mode("off", false, 0);
    if (!ring) {
        printf("SKIP (in part): /dev/kvm offers no dirty ring; the bitmap parts passed\n");
        return 0;
    }
    one_mode(NULL, true, KVM_DIRTY_RING_DEFAULT);
    {
        Vm src;
        start_vm(&src, "src-limit", guest_elf, "256M", NULL);
        vm_connect(&src);
        wait_pass(&src, 2, 60000);
        dirty_limit(&src);
        json_decref(cmd_ok(&src, "quit", NULL));
        vm_wait(&src, 10000);
    }
    /* a small ring: full over and over during the migration */
    vm_dirty_ring = "256";
    Vm src;
    start_vm(&src, "src-small", guest_elf, "256M", NULL);
    vm_connect(&src);
    wait_pass(&src, 2, 60000);
    check_stats_mode(&src, "ring", 256);
    json_t *m = migrate_ok(&src, "dst-small", guest_elf, NULL, true, 300000);
    json_t *x = json_object_get(m, "x-dirty-log");
    CHECK(num(x, "ring-size") == 256, "small ring: ring-size %lld", (long long)num(x, "ring-size"));
    CHECK(num(x, "ring-full") > 0, "small ring: no ring-full exit during the migration");
    printf("small ring: %lld ring-full exits during the migration, every page verified\n",
           (long long)num(x, "ring-full"));
    json_decref(m);
    json_decref(cmd_ok(&src, "quit", NULL));
    vm_wait(&src, 10000);
    vm_dirty_ring = NULL;
    printf("PASS: dirty log (bitmap and ring), calc-dirty-rate, migrations verified\n");
    return 0;
}
