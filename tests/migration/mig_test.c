/* SPDX-License-Identifier: MIT */
/*
 * Live migration between two `strata run` processes on this host's KVM
 * (label kvm; exit 77 where /dev/kvm cannot run guests).
 *
 * The guest (dirty.c) rewrites 32 MiB pass after pass at CPL3 and checks
 * every page for the previous pass before writing it, so a page lost or
 * torn by a migration makes the guest on the destination exit with 1.
 * Cases: an idle guest; a dirtying guest; a guest dirtying faster than the
 * bandwidth cap (the final round is forced); migrate_cancel mid-way; the
 * connection cut at several points (a proxy between the two); a byte
 * flipped at several offsets; a destination with another --memory.  After
 * each failure the same source keeps running its self-checking guest, and
 * the last case migrates that source successfully through the proxy.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "kvm/kvm.h"
#include "mig_harness.h"
#include "mig_proxy.h"
#include "testproc.h"

static void migrate_fails(Vm *src, const char *name, Proxy *px, const char *dst_memory,
                          const char *expect_src, const char *expect_dst)
{
    Vm dst;
    char uri[200], args[300];
    start_dest(&dst, name, guest_elf, dst_memory, uri, sizeof(uri));
    const char *target = uri + 5;
    if (px) {
        proxy_start(px, name, target);
        snprintf(args, sizeof(args), "{\"uri\": \"unix:%s\"}", px->path);
    } else {
        snprintf(args, sizeof(args), "{\"uri\": \"%s\"}", uri);
    }
    uint64_t before = read_u64(src, pass_addr);
    json_decref(cmd_ok(src, "migrate", args));
    json_t *q = wait_migration(src, 120000);
    const char *desc = json_string_value(json_object_get(q, "error-desc"));
    printf("%s: source %s (%s)%s\n", name, status_of(q), desc ? desc : "", px ? "" : "");
    CHECK(!strcmp(status_of(q), "failed"), "%s: expected failed, got %s", name, status_of(q));
    CHECK(desc && (!expect_src || strstr(desc, expect_src)), "%s: error-desc '%s' lacks '%s'", name,
          desc ? desc : "", expect_src ? expect_src : "");
    json_decref(q);
    if (px) {
        proxy_stop(px);
        CHECK(!px->connect_errno, "%s: the proxy could not reach the destination: %s", name,
              strerror(px->connect_errno));
    }
    int st = vm_wait(&dst, 90000);
    CHECK(st == 5, "%s: the destination should exit 5 (no guest started), got %d", name, st);
    CHECK(log_has(&dst, "the guest is not started"), "%s: destination message", name);
    CHECK(!expect_dst || log_has(&dst, expect_dst), "%s: destination log lacks '%s'", name,
          expect_dst);
    json_t *s = cmd_ok(src, "query-status", NULL);
    CHECK(!strcmp(json_string_value(json_object_get(s, "status")), "running"),
          "%s: source not running after the failure", name);
    json_decref(s);
    uint64_t after = wait_pass(src, before + 2, 60000);
    printf("%s: source guest goes on (pass %llu -> %llu, pages verified)\n", name,
           (unsigned long long)before, (unsigned long long)after);
    drain_migration(src, "failed");
}

static void test_cancel(Vm *src)
{
    Vm dst;
    char uri[200], args[300];
    start_dest(&dst, "cancel", guest_elf, "256M", uri, sizeof(uri));
    json_decref(cmd_ok(src, "migrate-set-parameters", "{\"max-bandwidth\": 4194304}"));
    uint64_t before = read_u64(src, pass_addr);
    snprintf(args, sizeof(args), "{\"uri\": \"%s\"}", uri);
    json_decref(cmd_ok(src, "migrate", args));
    /* wait until it is moving pages */
    for (int i = 0; i < 200; i++) {
        json_t *q = cmd_ok(src, "query-migrate", NULL);
        json_int_t tr = json_integer_value(
            json_object_get(json_object_get(q, "ram"), "transferred"));
        bool active = !strcmp(status_of(q), "active");
        json_decref(q);
        if (active && tr > (1 << 20))
            break;
        msleep(50);
    }
    json_t *r = qc_cmdf(src->c, "migrate", args); /* a second one is refused */
    CHECK(r && json_object_get(r, "error"), "a second migrate must be refused");
    json_decref(r);
    r = qc_cmdf(src->c, "system_reset", NULL);
    CHECK(r && json_object_get(r, "error"), "system_reset during a migration must be refused");
    json_decref(r);
    json_decref(cmd_ok(src, "migrate_cancel", NULL));
    json_t *q = wait_migration(src, 30000);
    CHECK(!strcmp(status_of(q), "cancelled"), "after migrate_cancel: %s", status_of(q));
    printf("cancel: %s after %lld bytes\n", status_of(q),
           json_integer_value(json_object_get(json_object_get(q, "ram"), "transferred")));
    json_decref(q);
    int st = vm_wait(&dst, 60000);
    CHECK(st == 5, "cancel: destination exit %d", st);
    uint64_t after = wait_pass(src, before + 2, 60000);
    printf("cancel: source guest goes on (pass %llu -> %llu)\n", (unsigned long long)before,
           (unsigned long long)after);
    unsigned seen = drain_migration(src, "cancelled");
    CHECK(seen & MIG_SEEN("cancelling"), "no 'cancelling' event before 'cancelled'");
    json_decref(cmd_ok(src, "migrate-set-parameters", "{\"max-bandwidth\": 134217728}"));
}

static void test_params(Vm *src)
{
    json_t *p = cmd_ok(src, "query-migrate-parameters", NULL);
    CHECK(json_integer_value(json_object_get(p, "downtime-limit")) == 300, "default downtime");
    CHECK(json_integer_value(json_object_get(p, "max-bandwidth")) == 128ll << 20, "default bw");
    json_decref(p);
    json_decref(cmd_ok(src, "migrate-set-parameters", "{\"downtime-limit\": 100}"));
    p = cmd_ok(src, "query-migrate-parameters", NULL);
    CHECK(json_integer_value(json_object_get(p, "downtime-limit")) == 100, "set downtime");
    json_decref(p);
    const char *bad[][2] = {
        { "migrate-set-parameters", "{\"downtime-limit\": -1}" },
        { "migrate-set-parameters", "{\"max-bandwidth\": \"x\"}" },
        { "migrate-set-parameters", "{\"bogus\": 1}" },
        { "migrate", "{\"uri\": \"ftp:x\"}" },
        { "migrate", "{\"uri\": \"tcp:127.0.0.1:0\"}" },
        { "migrate", "{}" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *r = qc_cmdf(src->c, bad[i][0], bad[i][1]);
        CHECK(r && json_object_get(r, "error"), "%s %s must fail", bad[i][0], bad[i][1]);
        json_decref(r);
    }
    json_t *q = cmd_ok(src, "query-migrate", NULL);
    CHECK(json_object_size(q) == 0, "query-migrate before any migration is {}");
    json_decref(q);
    /* a migration to nowhere fails and leaves the VM running */
    char args[200];
    snprintf(args, sizeof(args), "{\"uri\": \"unix:%s/nobody.sock\"}", tmpdir);
    json_decref(cmd_ok(src, "migrate", args));
    q = wait_migration(src, 10000);
    CHECK(!strcmp(status_of(q), "failed"), "migrate to nowhere: %s", status_of(q));
    json_decref(q);
    drain_migration(src, "failed");
    /* The same, 2000 times, query-migrate polled without a pause while the
     * thread fails: no reply may report a status before the MIGRATION
     * event announcing it.  query-migrate read the status after flushing
     * the queued events: a status set in between went out in the reply
     * first (22 of 10000 migrations on a PVM host before the fix, 0 after). */
    for (int i = 0; i < 2000; i++) {
        json_array_clear(src->c->events);
        json_decref(cmd_ok(src, "migrate", args));
        for (bool done = false; !done;) {
            q = cmd_ok(src, "query-migrate", NULL);
            const char *s = status_of(q);
            CHECK(s && mig_announced(src, s),
                  "migration %d to nowhere: query-migrate says %s before its MIGRATION event", i,
                  s ? s : "nothing");
            done = !strcmp(s, "failed");
            json_decref(q);
        }
    }
    json_array_clear(src->c->events);
    printf("2000 migrations to nowhere, query-migrate polled without a pause: every status "
           "announced by its MIGRATION event before a reply reported it\n");
    json_decref(cmd_ok(src, "migrate-set-parameters", "{\"downtime-limit\": 300}"));
}

int main(int argc, char **argv)
{
    unsigned soak_hops = 0, stress_secs = 0;
    bool handover = false, snapshot = false, incoming = false, autoconv = false, dirtylog = false;
    if (argc == 2 && !strcmp(argv[1], "--handover")) {
        handover = true;
    } else if (argc == 2 && !strcmp(argv[1], "--snapshot")) {
        snapshot = true;
    } else if (argc == 2 && !strcmp(argv[1], "--incoming")) {
        incoming = true;
    } else if (argc == 2 && !strcmp(argv[1], "--auto-converge")) {
        autoconv = true;
    } else if (argc == 2 && !strcmp(argv[1], "--dirty-log")) {
        dirtylog = true;
    } else if (argc == 3 && !strcmp(argv[1], "--soak")) {
        char *end;
        unsigned long n = strtoul(argv[2], &end, 10);
        if (*end || n < 1 || n > 100000) {
            fprintf(stderr, "mig-test: --soak N: N is a number of hops, 1..100000\n");
            return 2;
        }
        soak_hops = (unsigned)n;
    } else if (argc == 3 && !strcmp(argv[1], "--dirty-stress")) {
        char *end;
        unsigned long n = strtoul(argv[2], &end, 10);
        if (*end || n < 2 || n > 86400) {
            fprintf(stderr, "mig-test: --dirty-stress SECONDS: 2..86400\n");
            return 2;
        }
        stress_secs = (unsigned)n;
    } else if (argc != 1) {
        fprintf(
            stderr,
            "usage: mig-test [--soak HOPS | --dirty-stress SECONDS | --handover | --snapshot | "
            "--incoming | --auto-converge | --dirty-log]\n"
            "  (no argument: the migration suite; --soak: a 2-vCPU dirtying guest migrated "
            "HOPS times; --dirty-stress: the dirty log switched, taken and the guest paused in a "
            "loop under a self-checking dirtying guest; --handover: faults at READY, GO and ACK, the final phase's hard "
            "limit, stop/cont storms; --snapshot: save, restore, clones, bad files; --incoming: "
            "--incoming defer and migrate-incoming, as libvirt drives a destination; "
            "--auto-converge: a guest faster than the link, with and without throttling; "
            "--dirty-log: the dirty ring and the bitmap, calc-dirty-rate)\n");
        return 2;
    }
    const char *why = kvm_probe();
    if (why) {
        printf("SKIP: /dev/kvm cannot run guests here: %s\n", why);
        return 77;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/strata-mig-XXXXXX");
    CHECK(mkdtemp(tmpdir), "mkdtemp: %s", strerror(errno));
    atexit(cleanup);
    /* STRATA / MIG_DIRTY_ELF / MIG_IDLE_ELF override the build's paths (the
     * nested test bed runs this program with its own copies). */
    strata_bin = getenv("STRATA") ? getenv("STRATA") : STRATA_BIN;
    peer_bin = getenv("STRATA_PEER");
    guest_elf = getenv("MIG_DIRTY_ELF") ? getenv("MIG_DIRTY_ELF") : DIRTY_ELF;
    idle_elf = getenv("MIG_IDLE_ELF") ? getenv("MIG_IDLE_ELF") : IDLE_ELF;
    pio_elf = getenv("MIG_PIO_ELF") ? getenv("MIG_PIO_ELF") : PIO_ELF;
    testproc_sweep_strays(strata_bin, tmpdir);
    if (handover)
        return handover_suite();
    if (soak_hops)
        return soak(getenv("MIG_SMP_ELF") ? getenv("MIG_SMP_ELF") : SMP_ELF, soak_hops);
    if (stress_secs)
        return dirty_stress(guest_elf, getenv("MIG_SMP_ELF") ? getenv("MIG_SMP_ELF") : SMP_ELF,
                            stress_secs);
    pass_addr = elf_symbol(guest_elf, "mig_pass");
    counter_addr = elf_symbol(idle_elf, "mig_counter");
    if (snapshot)
        return snapshot_suite();
    if (incoming)
        return incoming_suite();
    if (autoconv)
        return auto_converge_suite();
    if (dirtylog)
        return dirty_log_suite();
    CHECK(elf_symbol(pio_elf, "mig_counter") == counter_addr, "pio guest layout");

    /* 1. idle guest, 2 vCPUs (the second waits for INIT/SIPI: its MP state
     * travels too) */
    Vm src;
    vm_cpus = "2";
    start_vm(&src, "idle-src", idle_elf, "256M", NULL);
    vm_connect(&src);
    test_params(&src);
    json_decref(migrate_ok(&src, "idle-2cpus", idle_elf, NULL, false, 60000));
    vm_cpus = "1";
    json_decref(cmd_ok(&src, "quit", NULL));
    CHECK(vm_wait(&src, 10000) == 0, "quit");
    qc_close(src.c);

    /* 1b. a guest in a PIO loop: paused right after port writes */
    start_vm(&src, "pio-src", pio_elf, "256M", NULL);
    vm_connect(&src);
    msleep(300);
    json_decref(migrate_ok(&src, "pio", pio_elf, NULL, false, 60000));
    json_decref(migrate_ok(&src, "tcp-pio-again", pio_elf, NULL, false, 60000));
    json_decref(cmd_ok(&src, "quit", NULL));
    CHECK(vm_wait(&src, 10000) == 0, "quit");
    qc_close(src.c);

    /* 2. a dirtying guest, then its destination migrates on (default settings) */
    start_vm(&src, "dirty-src", guest_elf, "256M", NULL);
    vm_connect(&src);
    wait_pass(&src, 2, 60000);
    json_decref(migrate_ok(&src, "dirty", guest_elf, NULL, true, 120000));
    json_decref(migrate_ok(&src, "dirty-again", guest_elf, NULL, true, 120000));

    /* 3. dirtying faster than the cap: the final round is forced */
    json_t *q = migrate_ok(&src, "capped", guest_elf,
                           "{\"max-bandwidth\": 16777216, \"downtime-limit\": 50}", true, 180000);
    CHECK(json_is_true(json_object_get(q, "x-forced-final-round")),
          "the capped migration should have been forced to its final round");
    CHECK(json_integer_value(json_object_get(q, "downtime")) > 0, "a forced round has downtime");
    json_decref(q);
    json_decref(cmd_ok(&src, "migrate-set-parameters",
                       "{\"max-bandwidth\": 134217728, \"downtime-limit\": 300}"));

    /* 4. cancel */
    test_cancel(&src);

    /* 5. cuts and corruption through a proxy; the source survives each */
    Proxy px;
    const uint64_t cuts[] = { 8, 20, 5000, 1u << 20, 12u << 20, 30u << 20 };
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        char name[32];
        snprintf(name, sizeof(name), "cut%zu", i);
        proxy_init(&px);
        px.cut_after = cuts[i];
        migrate_fails(&src, name, &px, "256M", NULL, NULL);
    }
    proxy_init(&px);
    px.at[PX_READY].action = PX_CUT; /* everything arrived; READY never gets back */
    migrate_fails(&src, "cut-at-handover", &px, "256M", NULL, "did not confirm the handover");
    srand(12345);
    for (int i = 0; i < 5; i++) {
        char name[32];
        snprintf(name, sizeof(name), "flip%d", i);
        proxy_init(&px);
        px.flip_at = i == 0 ? 3 : i == 1 ? 40 : (uint64_t)(rand() % (24 << 20));
        migrate_fails(&src, name, &px, "256M", "refused", NULL);
    }
    /* 6. another machine configuration */
    migrate_fails(&src, "config", NULL, "128M", "--memory 256 MiB",
                  "the source has --memory 256 MiB, this strata has 128 MiB");
    vm_cpus = "2";
    migrate_fails(&src, "config-cpus", NULL, "256M", "--cpus 1",
                  "the source has --cpus 1, this strata has 2");
    vm_cpus = "1";

    /* 7. after all that, the same source migrates fine */
    json_decref(migrate_ok(&src, "final", guest_elf, NULL, true, 120000));
    json_decref(cmd_ok(&src, "quit", NULL));
    CHECK(vm_wait(&src, 10000) == 0, "quit");
    qc_close(src.c);
    printf(
        "PASS: migration (idle 2 vCPUs, pio x2 (unix, tcp), dirty x2, capped+forced, cancel, 7 cuts, 5 flips, memory and "
        "cpus mismatch, final)\n");
    return 0;
}
