/* SPDX-License-Identifier: MIT */
/*
 * virtio-balloon end to end on /dev/kvm (label kvm): `strata run
 * --test-device --balloon --memory 256M` with guest.c, a tiny balloon
 * driver that touches 64 MiB and then follows the target.
 *
 *   1. QMP: query-balloon says all 256 MiB; balloon without a value > 0 is
 *      refused as QEMU refuses it.
 *   2. balloon {"value": 192 MiB}: the guest inflates the 64 MiB it touched;
 *      query-balloon reaches 192 MiB, BALLOON_CHANGE events came, and
 *      strata's RSS (/proc/PID/status VmRSS) fell by at least 75% of 64 MiB.
 *   2b. The inflated VM migrates to a second strata (`--incoming unix:`):
 *      the 64 MiB given back are not sent (query-migrate's ram.normal, the
 *      pages sent with their contents, stays under 4 MiB), the destination
 *      carries on with the balloon at 192 MiB and the source leaves, exit 0.
 *      Steps 3 and 4 run on the destination.
 *   3. balloon {"value": 256 MiB}: the guest deflates, finds every page it
 *      got back zeroed (else it exits with a code) and touches it again:
 *      query-balloon is back at 256 MiB, the RSS rose again by 75% of that.
 *   4. HMP info balloon, quit, exit status 0.
 * Without --balloon, balloon and query-balloon fail with DeviceNotActive.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qmp_harness.h"

#define MIB (1ll << 20)
#define RAM (256 * MIB)
#define TOUCHED (64 * MIB)

/* The log that holds the guest's console: the source's, then the destination's. */
static const char *console_log = "stderr.txt";

static long long rss_bytes(void)
{
    return strata_rss_kib() * 1024;
}

/* Waits (60 s at most) for `text` on the guest's console. */
static void wait_console(const char *text)
{
    wait_log_text(console_log, text, 60);
}

static long long query_actual(QClient *c)
{
    json_t *r = ok(c, "query-balloon", NULL);
    long long a = (long long)json_integer_value(json_object_get(r, "actual"));
    json_decref(r);
    return a;
}

/* Waits (60 s at most) until query-balloon says `want`. */
static void wait_actual(QClient *c, long long want)
{
    double t0 = now_s();
    long long a;
    while ((a = query_actual(c)) != want) {
        CHECK(now_s() - t0 < 60, "query-balloon stays at %lld, not %lld", a, want);
        msleep(20);
    }
}

static void set_target(QClient *c, long long bytes)
{
    char args[64];
    snprintf(args, sizeof(args), "{\"value\": %lld}", bytes);
    json_decref(ok(c, "balloon", args));
}

/* Step 2b: migrates the inflated VM; returns a client of the destination,
 * which the harness then treats as its strata. */
static QClient *migrate_inflated(QClient *c)
{
    char uri[200], dsock[sizeof(sock_path)], args[240];
    snprintf(uri, sizeof(uri), "unix:%s/mig.sock", tmpdir);
    snprintf(dsock, sizeof(dsock), "%s/dst.sock", tmpdir);
    pid_t dst = spawn_as("dst", "--test-device", "--kernel", BALLOON_ELF, "--balloon", "--memory",
                         "256M", "--api-socket", dsock, "--serial", "none", "--incoming", uri,
                         NULL);
    wait_log_text("dst-stderr.txt", "waiting for an incoming migration", 60);
    snprintf(args, sizeof(args), "{\"uri\": \"%s\"}", uri);
    double t0 = now_s();
    json_decref(ok(c, "migrate", args));
    json_t *q;
    const char *st;
    for (;;) {
        q = ok(c, "query-migrate", NULL);
        st = json_string_value(json_object_get(q, "status"));
        CHECK(st && strcmp(st, "failed") && strcmp(st, "cancelled"), "migration %s: %s",
              st ? st : "(no status)", json_dumps(q, 0));
        if (!strcmp(st, "completed"))
            break;
        CHECK(now_s() - t0 < 60, "migration still %s after 60 s", st);
        json_decref(q);
        msleep(20);
    }
    json_t *ram = json_object_get(q, "ram");
    long long normal = (long long)json_integer_value(json_object_get(ram, "normal"));
    long long dup = (long long)json_integer_value(json_object_get(ram, "duplicate"));
    json_decref(q);
    printf("migrate with 64 MiB inflated: %.2f s; %lld pages sent with contents (%.1f MiB), "
           "%lld as zero\n",
           now_s() - t0, normal, normal * 4096 / (double)MIB, dup);
    CHECK(normal > 0 && normal * 4096 < 4 * MIB,
          "%lld pages sent with contents: the 64 MiB the balloon gave back went too?", normal);
    qc_close(c);
    pid_t src = strata_pid;
    strata_pid = dst;
    snprintf(sock_path, sizeof(sock_path), "%s", dsock);
    console_log = "dst-stderr.txt";
    int code = wait_status(src); /* a migrated-away source leaves by itself */
    CHECK(code == 0, "the source's exit status %d", code);
    QClient *d = open_client();
    qc_set_timeout(d, 60000);
    CHECK(query_actual(d) == RAM - TOUCHED, "the destination's balloon is at %lld",
          query_actual(d));
    json_t *s = ok(d, "query-status", NULL);
    CHECK(!strcmp(json_string_value(json_object_get(s, "status")) ?: "", "running"),
          "the destination is %s", json_dumps(s, 0));
    json_decref(s);
    printf("ok: the destination runs with the balloon at 192 MiB; the source left, exit 0\n");
    return d;
}

static void no_balloon(void)
{
    strata_pid = spawn("--test-device", "--kernel", BALLOON_ELF, "--api-socket", sock_path,
                       "--serial", "none", NULL);
    QClient *c = open_client();
    fails(c, "query-balloon", NULL, "DeviceNotActive", "No balloon device has been activated");
    fails(c, "balloon", "{\"value\": 1048576}", "DeviceNotActive",
          "No balloon device has been activated");
    json_decref(ok(c, "quit", NULL));
    qc_close(c);
    wait_status(strata_pid);
    strata_pid = -1;
    printf("ok: without --balloon: DeviceNotActive\n");
}

int main(void)
{
    harness_init("balloon");
    no_balloon();
    strata_pid = spawn("--test-device", "--kernel", BALLOON_ELF, "--balloon", "--memory", "256M",
                       "--api-socket", sock_path, "--serial", "none", NULL);
    wait_console("balloon: touched MiB 0x40");
    QClient *c = open_client();
    qc_set_timeout(c, 60000);
    CHECK(query_actual(c) == RAM, "query-balloon before any target");
    fails(c, "balloon", "{\"value\": 0}", "GenericError", "expects a size");
    msleep(200); /* let the touched pages settle in the RSS */
    long long rss0 = rss_bytes();

    double t0 = now_s();
    set_target(c, RAM - TOUCHED);
    wait_actual(c, RAM - TOUCHED);
    wait_console("balloon: inflated to pages 0x4000");
    json_t *ev = qc_wait_event(c, "BALLOON_CHANGE");
    CHECK(ev, "no BALLOON_CHANGE event");
    json_decref(ev);
    long long rss1 = rss_bytes();
    printf("inflate 64 MiB: %.2f s; RSS %.1f -> %.1f MiB (fell %.1f MiB)\n", now_s() - t0,
           rss0 / (double)MIB, rss1 / (double)MIB, (rss0 - rss1) / (double)MIB);
    CHECK(rss0 - rss1 >= TOUCHED * 3 / 4, "strata's RSS fell by %.1f MiB, want >= 48 MiB",
          (rss0 - rss1) / (double)MIB);

    char *info = hmp(c, "info balloon");
    CHECK(!strcmp(info, "balloon: actual=192\n"), "info balloon: '%s'", info);
    free(info);

    c = migrate_inflated(c);
    msleep(200);
    rss1 = rss_bytes(); /* the destination's */

    t0 = now_s();
    set_target(c, RAM);
    wait_actual(c, RAM);
    wait_console("balloon: deflated to pages 0x0");
    long long rss2 = rss_bytes();
    printf("deflate 64 MiB (the guest found every page zeroed and touched it): %.2f s; RSS "
           "%.1f -> %.1f MiB\n",
           now_s() - t0, rss1 / (double)MIB, rss2 / (double)MIB);
    CHECK(rss2 - rss1 >= TOUCHED * 3 / 4, "RSS rose by %.1f MiB after the deflate, want >= 48",
          (rss2 - rss1) / (double)MIB);
    size_t events = qc_count_events(c, "BALLOON_CHANGE");
    CHECK(events >= 1, "no BALLOON_CHANGE events during the deflate");

    json_decref(ok(c, "quit", NULL));
    qc_close(c);
    int code = wait_status(strata_pid);
    strata_pid = -1;
    char *err = read_log(console_log);
    CHECK(code == 0, "strata exit status %d\n%s", code, err);
    CHECK(!strstr(err, "device needs reset") && !strstr(err, "not guest RAM"),
          "strata logged a device error:\n%s", err);
    free(err);
    printf("PASS\n");
    return 0;
}
