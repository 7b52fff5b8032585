/* SPDX-License-Identifier: MIT */
/*
 * auto-converge (mig-test --auto-converge): the dirtying guest (dirty.c,
 * 32 MiB rewritten pass after pass) migrated over a link capped at
 * 32 MiB/s with a 50 ms downtime-limit, which it outruns.
 *
 *   1. the parameters and the capability: defaults, bounds, round trip;
 *   2. without auto-converge the pre-copy never converges: the final
 *      round is forced and the throttle never shows;
 *   3. with it, query-migrate reports cpu-throttle-percentage while the
 *      rounds run, the final round is not forced, the guest's pages check
 *      out on the destination (its own checks and the guest going on) and
 *      the guest there runs at its normal pace;
 *   4. cancelled while throttled, the source's guest gets its pace back.
 *
 * Assertions are on states and on pass counts measured over the same
 * wall-clock window, with a wide margin (a throttle of 90% or more slows
 * the guest ten times; the checks ask for a factor of 3); timings are
 * printed.
 */
#include <string.h>

#include "mig_harness.h"

#define CAPPED "\"max-bandwidth\": 33554432, \"downtime-limit\": 50"

static json_int_t throttle_seen; /* the highest cpu-throttle-percentage polled */
static unsigned throttle_polls;  /* replies that carried it */

static void watch_throttle(json_t *q)
{
    json_t *t = json_object_get(q, "cpu-throttle-percentage");
    if (!t)
        return;
    CHECK(json_is_integer(t) && json_integer_value(t) > 0 && json_integer_value(t) <= 99,
          "cpu-throttle-percentage %s", json_dumps(t, JSON_ENCODE_ANY));
    throttle_polls++;
    if (json_integer_value(t) > throttle_seen)
        throttle_seen = json_integer_value(t);
}

/* The guest's passes per second over ms milliseconds. */
static double pass_rate(Vm *vm, unsigned ms)
{
    uint64_t p0 = read_u64(vm, pass_addr);
    double t0 = now_s();
    msleep(ms);
    uint64_t p1 = read_u64(vm, pass_addr);
    return (double)(p1 - p0) / (now_s() - t0);
}

static json_int_t param(Vm *vm, const char *name)
{
    json_t *p = cmd_ok(vm, "query-migrate-parameters", NULL);
    json_t *v = json_object_get(p, name);
    CHECK(v, "query-migrate-parameters lacks %s", name);
    json_int_t r = json_is_boolean(v) ? json_is_true(v) : json_integer_value(v);
    json_decref(p);
    return r;
}

static bool capability(Vm *vm, const char *name)
{
    json_t *caps = cmd_ok(vm, "query-migrate-capabilities", NULL);
    size_t i;
    json_t *e;
    int state = -1;
    json_array_foreach(caps, i, e)
    {
        if (!strcmp(json_string_value(json_object_get(e, "capability")), name))
            state = json_is_true(json_object_get(e, "state"));
    }
    json_decref(caps);
    CHECK(state >= 0, "query-migrate-capabilities lacks %s", name);
    return state;
}

static void set_auto_converge(Vm *vm, bool on)
{
    char args[128];
    snprintf(args, sizeof(args),
             "{\"capabilities\": [{\"capability\": \"auto-converge\", \"state\": %s}]}",
             on ? "true" : "false");
    json_decref(cmd_ok(vm, "migrate-set-capabilities", args));
    CHECK(capability(vm, "auto-converge") == on, "auto-converge did not become %d", on);
}

static void test_params(Vm *vm)
{
    CHECK(param(vm, "cpu-throttle-initial") == 20, "cpu-throttle-initial default");
    CHECK(param(vm, "cpu-throttle-increment") == 10, "cpu-throttle-increment default");
    CHECK(param(vm, "max-cpu-throttle") == 99, "max-cpu-throttle default");
    CHECK(param(vm, "cpu-throttle-tailslow") == 0, "cpu-throttle-tailslow default");
    CHECK(!capability(vm, "auto-converge"), "auto-converge is off by default");
    const char *bad[] = {
        "{\"cpu-throttle-initial\": 0}",   "{\"cpu-throttle-initial\": 100}",
        "{\"cpu-throttle-increment\": 0}", "{\"cpu-throttle-increment\": 100}",
        "{\"max-cpu-throttle\": 0}",       "{\"max-cpu-throttle\": 100}",
        "{\"cpu-throttle-tailslow\": 1}",  "{\"cpu-throttle-initial\": \"20\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cmd_refused(vm, "migrate-set-parameters", bad[i],
                    i < 6 ? "expects an integer in 1..99" : "cpu-throttle-");
    CHECK(param(vm, "cpu-throttle-initial") == 20, "a refused set changed nothing");
    json_decref(cmd_ok(vm, "migrate-set-parameters",
                       "{\"cpu-throttle-initial\": 35, \"cpu-throttle-increment\": 15, "
                       "\"max-cpu-throttle\": 80, \"cpu-throttle-tailslow\": true}"));
    CHECK(param(vm, "cpu-throttle-initial") == 35 && param(vm, "cpu-throttle-increment") == 15 &&
              param(vm, "max-cpu-throttle") == 80 && param(vm, "cpu-throttle-tailslow") == 1,
          "the throttle parameters did not round-trip");
    set_auto_converge(vm, true);
    set_auto_converge(vm, false);
    cmd_refused(vm, "migrate-set-capabilities",
                "{\"capabilities\": [{\"capability\": \"xbzrle\", \"state\": true}]}", "xbzrle");
    json_decref(cmd_ok(vm, "migrate-set-parameters",
                       "{\"cpu-throttle-initial\": 20, \"cpu-throttle-increment\": 10, "
                       "\"max-cpu-throttle\": 99, \"cpu-throttle-tailslow\": false}"));
}

/* Migrates *src over the capped link; the final query-migrate. */
static json_t *capped(Vm *src, const char *name, const char *extra)
{
    char params[256];
    snprintf(params, sizeof(params), "{" CAPPED ", \"x-verify-ram\": false%s}", extra);
    throttle_seen = 0;
    throttle_polls = 0;
    mig_poll_hook = watch_throttle;
    json_t *q = migrate_ok(src, name, guest_elf, params, true, 300000);
    mig_poll_hook = NULL;
    json_int_t peak = json_integer_value(json_object_get(q, "x-cpu-throttle-peak"));
    printf("%s: %lld rounds, downtime %lld ms (limit 50), forced %s, throttle polled max %lld%% "
           "(%u replies), peak %lld%%\n",
           name, json_integer_value(json_object_get(q, "x-rounds")),
           json_integer_value(json_object_get(q, "downtime")),
           json_is_true(json_object_get(q, "x-forced-final-round")) ? "yes" : "no",
           (long long)throttle_seen, throttle_polls, (long long)peak);
    return q;
}

/* Auto-converge on, cancelled once the throttle shows: the guest here
 * gets its pace back. */
static void cancel_throttled(Vm *src, double rate_before)
{
    Vm dst;
    char uri[200], args[300];
    start_dest(&dst, "ac-cancel", guest_elf, "256M", uri, sizeof(uri));
    set_auto_converge(src, true);
    json_decref(cmd_ok(src, "migrate-set-parameters",
                       "{" CAPPED ", \"cpu-throttle-initial\": 90, \"x-max-rounds\": 1000}"));
    snprintf(args, sizeof(args), "{\"uri\": \"%s\"}", uri);
    json_decref(cmd_ok(src, "migrate", args));
    json_int_t pct = 0;
    for (int i = 0; i < 1200 && pct == 0; i++) { /* up to a minute */
        json_t *q = cmd_ok(src, "query-migrate", NULL);
        CHECK(!strcmp(status_of(q), "active") || !strcmp(status_of(q), "setup"),
              "ac-cancel: the migration ended before it throttled: %s", json_dumps(q, 0));
        pct = json_integer_value(json_object_get(q, "cpu-throttle-percentage"));
        json_decref(q);
        if (!pct)
            msleep(50);
    }
    CHECK(pct == 90, "ac-cancel: cpu-throttle-percentage %lld, expected 90", (long long)pct);
    double rate_throttled = pass_rate(src, 1000);
    json_decref(cmd_ok(src, "migrate_cancel", NULL));
    json_t *q = wait_migration(src, 30000);
    CHECK(!strcmp(status_of(q), "cancelled"), "ac-cancel: %s", status_of(q));
    CHECK(!json_object_get(q, "cpu-throttle-percentage"),
          "ac-cancel: a cancelled migration still reports a throttle");
    json_decref(q);
    drain_migration(src, "cancelled");
    CHECK(vm_wait(&dst, 60000) == 5, "ac-cancel: the destination should exit 5");
    double rate_after = pass_rate(src, 1000);
    printf("ac-cancel: guest passes/s: %.1f before, %.1f throttled at 90%% (dirty logging on), "
           "%.1f after the cancel\n",
           rate_before, rate_throttled, rate_after);
    CHECK(rate_after * 3 >= rate_before,
          "ac-cancel: the guest is still slow after the cancel (%.1f passes/s, %.1f before)",
          rate_after, rate_before);
    CHECK(rate_throttled * 3 <= rate_after,
          "ac-cancel: a 90%% throttle did not slow the guest (%.1f passes/s, %.1f after)",
          rate_throttled, rate_after);
    set_auto_converge(src, false);
    json_decref(cmd_ok(src, "migrate-set-parameters",
                       "{\"max-bandwidth\": 134217728, \"downtime-limit\": 300, "
                       "\"cpu-throttle-initial\": 20, \"x-max-rounds\": 30}"));
}

int auto_converge_suite(void)
{
    Vm src;
    start_vm(&src, "ac-src", guest_elf, "256M", NULL);
    vm_connect(&src);
    wait_pass(&src, 2, 60000);
    test_params(&src);
    double rate_before = pass_rate(&src, 1000);
    printf("auto-converge: the guest does %.1f passes/s (32 MiB each) before any migration\n",
           rate_before);
    CHECK(rate_before > 0, "the guest does not run");

    cancel_throttled(&src, rate_before);

    json_t *q = capped(&src, "ac-off", ", \"x-max-rounds\": 12");
    CHECK(json_is_true(json_object_get(q, "x-forced-final-round")),
          "ac-off: without auto-converge the final round should be forced");
    CHECK(throttle_polls == 0 && !json_object_get(q, "x-cpu-throttle-peak"),
          "ac-off: throttled without auto-converge");
    json_decref(q);

    set_auto_converge(&src, true);
    q = capped(&src, "ac-on", ", \"x-max-rounds\": 30");
    CHECK(!json_is_true(json_object_get(q, "x-forced-final-round")),
          "ac-on: the final round was forced: auto-converge did not converge");
    CHECK(json_integer_value(json_object_get(q, "downtime")) <= 50,
          "ac-on: downtime %lld ms over the 50 ms limit",
          json_integer_value(json_object_get(q, "downtime")));
    CHECK(throttle_polls > 0 && throttle_seen >= 20,
          "ac-on: query-migrate never reported cpu-throttle-percentage during the run");
    CHECK(json_integer_value(json_object_get(q, "x-cpu-throttle-peak")) >= throttle_seen,
          "ac-on: x-cpu-throttle-peak below what was polled");
    json_decref(q);
    double rate_dst = pass_rate(&src, 1000); /* src is the destination now */
    printf("ac-on: on the destination the guest does %.1f passes/s (%.1f before)\n", rate_dst,
           rate_before);
    CHECK(rate_dst * 3 >= rate_before,
          "ac-on: the guest runs slowly on the destination (%.1f passes/s, %.1f before)", rate_dst,
          rate_before);
    CHECK(!capability(&src, "auto-converge"), "a destination starts with auto-converge off");
    json_decref(cmd_ok(&src, "quit", NULL));
    CHECK(vm_wait(&src, 10000) == 0, "quit");
    qc_close(src.c);
    printf("PASS: auto-converge (parameters, cancel while throttled, forced without, converged "
           "with)\n");
    return 0;
}
