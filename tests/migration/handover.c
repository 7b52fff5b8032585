/* SPDX-License-Identifier: MIT */
/*
 * mig-test --handover (ctest migration.handover): the handover under
 * faults.  The rule checked in every case: at each instant exactly one
 * side may run the guest, and whatever fails, one side can.
 *
 * Through the fault proxy (mig_proxy.h), READY, GO and the answer to GO
 * are delayed, dropped or cut at, and the destination is signalled while
 * it loads and while it waits for GO.  Each case checks the source's
 * outcome (query-migrate's status, error-desc and x-guest-owner), whether
 * the guest runs on the source (its counter moves) or is held paused,
 * whether the destination runs it or exits 5, and how long the final
 * pause lasted (x-final-pause) against the hard limit.  Then: query-status
 * says finish-migrate during the final phase, where stop and cont are
 * refused; and storms of stop/cont during migrations, after which the
 * destination's run state is the one the last acknowledged command asked
 * for.
 */
#include <signal.h>
#include <string.h>

#include "mig_harness.h"
#include "mig_proxy.h"

static uint64_t counter(Vm *vm)
{
    return read_u64(vm, counter_addr);
}

/* The guest's counter moves within 300 ms. */
static bool guest_moves(Vm *vm)
{
    uint64_t c0 = counter(vm);
    msleep(300);
    return counter(vm) != c0;
}

typedef enum { SIG_NONE, SIG_LOADING, SIG_BEFORE_GO } Signal;

typedef struct Case {
    const char *name;
    ProxyFault ready, go, answer;
    Signal signal;
    unsigned limit_ms;  /* x-final-phase-limit */
    const char *expect; /* in error-desc */
    const char *owner;  /* x-guest-owner after it: "source" or "unknown" */
    bool dest_runs;     /* the destination took GO and runs the guest */
    unsigned extra_ms;  /* the pause may last limit + this (+ slack): the waits
                                 * after READY (GO_WAIT, ACK_WAIT) */
} Case;

static void run_case(Vm *src, const Case *k)
{
    Vm dst;
    char uri[200], args[300], st[64];
    Proxy px;
    start_dest(&dst, k->name, idle_elf, "256M", uri, sizeof(uri));
    proxy_init(&px);
    px.at[PX_READY] = k->ready;
    px.at[PX_GO] = k->go;
    px.at[PX_ANSWER] = k->answer;
    proxy_start(&px, k->name, uri + 5);
    snprintf(args, sizeof(args), "{\"x-final-phase-limit\": %u, \"max-bandwidth\": %llu}",
             k->limit_ms, k->signal == SIG_LOADING ? 256ull << 10 : 1ull << 30);
    json_decref(cmd_ok(src, "migrate-set-parameters", args));
    snprintf(args, sizeof(args), "{\"uri\": \"unix:%s\"}", px.path);
    json_decref(cmd_ok(src, "migrate", args));
    if (k->signal == SIG_LOADING) {
        /* the destination is loading: some RAM has arrived */
        for (int i = 0; i < 600 && px.forwarded < (64u << 10); i++)
            msleep(10);
        CHECK(px.forwarded >= (64u << 10), "%s: the stream did not start", k->name);
        kill(dst.pid, SIGTERM);
    } else if (k->signal == SIG_BEFORE_GO) {
        CHECK(proxy_wait_seen(&px, PX_GO, 60000), "%s: GO never came", k->name);
        kill(dst.pid, SIGTERM);
    }
    json_t *q = wait_migration(src, 90000);
    const char *desc = json_string_value(json_object_get(q, "error-desc"));
    const char *owner = json_string_value(json_object_get(q, "x-guest-owner"));
    json_int_t pause = json_integer_value(json_object_get(q, "x-final-pause"));
    printf("%s: source %s, owner %s, final pause %lld ms (limit %lld): %s\n", k->name, status_of(q),
           owner ? owner : "?", (long long)pause,
           json_integer_value(json_object_get(q, "x-final-phase-limit")), desc ? desc : "");
    CHECK(!strcmp(status_of(q), "failed"), "%s: expected failed, got %s", k->name, status_of(q));
    CHECK(desc && strstr(desc, k->expect), "%s: error-desc lacks '%s'", k->name, k->expect);
    CHECK(owner && !strcmp(owner, k->owner), "%s: x-guest-owner %s, expected %s", k->name,
          owner ? owner : "(none)", k->owner);
    /* the bound the design promises (docs/migration.md): the limit, plus
     * the destination's GO wait or the source's ACK wait after READY */
    unsigned bound = k->limit_ms + k->extra_ms + 1500;
    CHECK(pause >= 0 && pause < bound,
          "%s: the final pause lasted %lld ms, over its bound "
          "of %u ms",
          k->name, (long long)pause, bound);
    json_decref(q);
    drain_migration(src, "failed");

    if (!strcmp(k->owner, "source")) {
        CHECK(!strcmp(run_status(src, st, sizeof(st)), "running"),
              "%s: the source is %s, not running", k->name, st);
        CHECK(guest_moves(src), "%s: the source's guest does not run", k->name);
    } else {
        /* held: paused here until the operator says cont */
        CHECK(!strcmp(run_status(src, st, sizeof(st)), "paused"),
              "%s: the held source is %s, not paused", k->name, st);
        CHECK(!guest_moves(src), "%s: the held source's guest runs", k->name);
        cmd_refused(src, "migrate", args, "unconfirmed handover");
        cmd_refused(src, "system_reset", NULL, "unconfirmed handover");
        json_decref(cmd_ok(src, "stop", NULL)); /* already paused: a no-op */
        CHECK(!guest_moves(src), "%s: stop released the held guest", k->name);
    }
    if (k->dest_runs) {
        vm_connect(&dst);
        CHECK(!strcmp(run_status(&dst, st, sizeof(st)), "running"),
              "%s: the destination is %s, not running", k->name, st);
        CHECK(guest_moves(&dst), "%s: the destination's guest does not run", k->name);
        CHECK(!guest_moves(src), "%s: both sides run the guest", k->name);
        /* the operator stops the destination's copy, then resumes here */
        json_decref(cmd_ok(&dst, "quit", NULL));
        CHECK(vm_wait(&dst, 10000) == 0, "%s: destination quit", k->name);
        qc_close(dst.c);
    } else {
        int s = vm_wait(&dst, 30000);
        CHECK(s == 5, "%s: the destination should exit 5 (no guest started), got %d", k->name, s);
        CHECK(log_has(&dst, "the guest is not started"), "%s: destination message", k->name);
    }
    if (strcmp(k->owner, "source")) {
        json_decref(cmd_ok(src, "cont", NULL));
        CHECK(!strcmp(run_status(src, st, sizeof(st)), "running"),
              "%s: after cont the source is %s", k->name, st);
        CHECK(guest_moves(src), "%s: after cont the source's guest does not run", k->name);
        q = cmd_ok(src, "query-migrate", NULL);
        CHECK(!strcmp(json_string_value(json_object_get(q, "x-guest-owner")), "source"),
              "%s: after cont the owner is not the source", k->name);
        json_decref(q);
        printf("%s: cont on the source: its guest runs again\n", k->name);
    }
    proxy_stop(&px);
    CHECK(!px.connect_errno, "%s: the proxy could not reach the destination", k->name);
}

/* READY held 3 s: meanwhile the source says finish-migrate and refuses
 * stop and cont; then the migration completes.  *src becomes the
 * destination. */
static void finish_migrate(Vm *src)
{
    Vm dst;
    char uri[200], args[300], st[64];
    Proxy px;
    start_dest(&dst, "finish", idle_elf, "256M", uri, sizeof(uri));
    proxy_init(&px);
    px.at[PX_READY] = (ProxyFault){ PX_DELAY, 3000 }; /* the window the checks run in */
    proxy_start(&px, "finish", uri + 5);
    json_decref(cmd_ok(src, "migrate-set-parameters", "{\"x-final-phase-limit\": 30000}"));
    snprintf(args, sizeof(args), "{\"uri\": \"unix:%s\"}", px.path);
    json_decref(cmd_ok(src, "migrate", args));
    CHECK(proxy_wait_seen(&px, PX_READY, 60000), "finish: READY never came");
    CHECK(!strcmp(run_status(src, st, sizeof(st)), "finish-migrate"),
          "finish: query-status during the final phase says %s", st);
    json_t *s = cmd_ok(src, "query-status", NULL);
    CHECK(json_is_false(json_object_get(s, "running")), "finish: running is true");
    json_decref(s);
    cmd_refused(src, "stop", NULL, "finish-migrate");
    cmd_refused(src, "cont", NULL, "finish-migrate");
    json_t *q = wait_migration(src, 60000);
    CHECK(!strcmp(status_of(q), "completed"), "finish: %s", status_of(q));
    CHECK(!strcmp(json_string_value(json_object_get(q, "x-guest-owner")), "destination"),
          "finish: owner");
    json_int_t down = json_integer_value(json_object_get(q, "downtime"));
    CHECK(down >= 3000, "finish: downtime %lld ms with READY held 3 s", (long long)down);
    printf("finish: finish-migrate seen, stop and cont refused, completed (downtime %lld ms)\n",
           (long long)down);
    json_decref(q);
    drain_migration(src, "completed");
    proxy_stop(&px);
    CHECK(px.tags[PX_ANSWER] == 0x214b4341u, "finish: the answer to GO was not ACK!");
    qc_close(src->c);
    CHECK(vm_wait(src, 10000) == 0, "finish: the source should exit 0");
    vm_connect(&dst);
    CHECK(guest_moves(&dst), "finish: the destination's guest does not run");
    *src = dst;
}

/* stop/cont alternating as fast as QMP answers while a migration runs:
 * the destination must start in the state the last acknowledged command
 * asked for.  *src becomes the destination. */
static void storm(Vm *src, int round)
{
    Vm dst;
    char uri[200], args[300], name[32], st[64];
    snprintf(name, sizeof(name), "storm%d", round);
    start_dest(&dst, name, idle_elf, "256M", uri, sizeof(uri));
    json_decref(cmd_ok(src, "migrate-set-parameters",
                       "{\"x-final-phase-limit\": 30000, \"max-bandwidth\": 268435456}"));
    snprintf(args, sizeof(args), "{\"uri\": \"%s\"}", uri);
    json_decref(cmd_ok(src, "migrate", args));
    bool want_running = true; /* the last acknowledged command's state */
    unsigned acked = 0, refused = 0;
    for (int i = 0;; i++) {
        const char *c = i % 2 ? "cont" : "stop";
        json_t *r = qc_cmdf(src->c, c, NULL);
        CHECK(r, "%s: no answer to %s", name, c);
        if (json_object_get(r, "return")) {
            want_running = i % 2;
            acked++;
        } else {
            const char *d = json_string_value(json_object_get(json_object_get(r, "error"), "desc"));
            CHECK(d && (strstr(d, "finish-migrate") || strstr(d, "migrated away")),
                  "%s: %s refused for another reason: %s", name, c, d ? d : "?");
            refused++;
        }
        json_decref(r);
        json_t *q = cmd_ok(src, "query-migrate", NULL);
        bool end = strcmp(status_of(q), "active") && strcmp(status_of(q), "setup") &&
                   strcmp(status_of(q), "device");
        if (end)
            CHECK(!strcmp(status_of(q), "completed"), "%s: migration %s", name, status_of(q));
        json_decref(q);
        if (end)
            break;
        CHECK(i < 200000, "%s: the migration never ended", name);
    }
    drain_migration(src, "completed");
    qc_close(src->c);
    CHECK(vm_wait(src, 10000) == 0, "%s: the source should exit 0", name);
    vm_connect(&dst);
    run_status(&dst, st, sizeof(st));
    printf("%s: %u acknowledged, %u refused; the last acknowledged asked for %s; the "
           "destination is %s\n",
           name, acked, refused, want_running ? "running" : "paused", st);
    CHECK(!strcmp(st, want_running ? "running" : "paused"),
          "%s: the destination is %s, the last acknowledged command asked for %s", name, st,
          want_running ? "running" : "paused");
    if (!want_running)
        json_decref(cmd_ok(&dst, "cont", NULL));
    CHECK(guest_moves(&dst), "%s: the destination's guest does not run", name);
    *src = dst;
}

int handover_suite(void)
{
    counter_addr = elf_symbol(idle_elf, "mig_counter");
    Vm src;
    start_vm(&src, "ho-src", idle_elf, "256M", NULL);
    vm_connect(&src);
    json_t *p = cmd_ok(&src, "query-migrate-parameters", NULL);
    CHECK(json_integer_value(json_object_get(p, "x-final-phase-limit")) == 0,
          "x-final-phase-limit defaults to 0 (derived)");
    json_decref(p);
    const unsigned GO_WAIT = 5000, ACK_WAIT = 10000;
    /* clang-format off */
    const Case cases[] = {
        /* before GO: the source keeps the guest, the final pause is bounded */
        { "ready-late", { PX_DELAY, 4000 }, {0}, {0}, SIG_NONE, 1000,
          "hard limit of 1000 ms", "source", false, 0 },
        { "ready-dropped", { PX_DROP, 0 }, {0}, {0}, SIG_NONE, 1000,
          "hard limit of 1000 ms", "source", false, 0 },
        { "ready-cut", { PX_CUT, 0 }, {0}, {0}, SIG_NONE, 20000,
          "waiting for the destination's READY", "source", false, 0 },
        { "signal-loading", {0}, {0}, {0}, SIG_LOADING, 20000,
          "interrupted", "source", false, 0 },
        /* the destination refuses GO: ERR! comes back, the source resumes */
        { "signal-before-go", {0}, { PX_DELAY, 2000 }, {0}, SIG_BEFORE_GO, 20000,
          "no GO from the source", "source", false, GO_WAIT },
        { "go-dropped", {0}, { PX_DROP, 0 }, {0}, SIG_NONE, 20000,
          "no GO from the source", "source", false, GO_WAIT },
        /* GO left, no answer: nobody knows whether it arrived: held */
        { "go-cut", {0}, { PX_CUT, 0 }, {0}, SIG_NONE, 20000,
          "handover was not confirmed", "unknown", false, ACK_WAIT },
        { "ack-dropped", {0}, {0}, { PX_DROP, 0 }, SIG_NONE, 20000,
          "handover was not confirmed", "unknown", true, ACK_WAIT },
        { "ack-cut", {0}, {0}, { PX_CUT, 0 }, SIG_NONE, 20000,
          "handover was not confirmed", "unknown", true, ACK_WAIT },
    };
    /* clang-format on */
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        run_case(&src, &cases[i]);
    /* the default limit: max(10 x downtime-limit, 2000 ms) */
    json_decref(cmd_ok(&src, "migrate-set-parameters",
                       "{\"x-final-phase-limit\": 0, \"downtime-limit\": 500}"));
    json_t *q = cmd_ok(&src, "query-migrate", NULL);
    CHECK(json_integer_value(json_object_get(q, "x-final-phase-limit")) == 5000,
          "derived limit for downtime-limit 500: %lld",
          json_integer_value(json_object_get(q, "x-final-phase-limit")));
    json_decref(q);
    json_decref(cmd_ok(&src, "migrate-set-parameters", "{\"downtime-limit\": 300}"));
    finish_migrate(&src);
    for (int r = 0; r < 4; r++)
        storm(&src, r);
    json_decref(cmd_ok(&src, "quit", NULL));
    CHECK(vm_wait(&src, 10000) == 0, "quit");
    qc_close(src.c);
    printf("PASS: handover (%zu fault cases, finish-migrate, 4 stop/cont storms)\n",
           sizeof(cases) / sizeof(cases[0]));
    return 0;
}
