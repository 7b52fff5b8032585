/* SPDX-License-Identifier: MIT */
/*
 * A raw-QMP client for the e2e tier and the QMP figures, against a running
 * `strata run --api-socket` with a Linux guest (tests/e2e/cases.sh, case
 * qmp; scripts/bench-qmp-linux.sh).  C, not Python: the nested test bed's
 * first level is busybox with no Python.
 *
 *   qmp-linux session SOCKET SERIAL_LOG
 *       The whole session, asserting as it goes: greeting, commands refused
 *       before negotiation, negotiation, query-status running, stop -> STOP
 *       event, paused, the guest's heartbeat (lines "TICK ..." on its
 *       console, in SERIAL_LOG) frozen; cont -> RESUME, heartbeat again;
 *       query-mtree (both address spaces, virtio-mmio and acpi-ged ranges,
 *       KVM slots of microvm.ram); human-monitor-command info mtree; bad
 *       requests answered with errors while the heartbeat goes on;
 *       system_powerdown -> {} and POWERDOWN, then the guest powers off:
 *       SHUTDOWN (guest: true) and strata closes the socket.  Prints one
 *       "ok:" line per step and "QMP-LINUX PASS", or a failed CHECK
 *       ("FILE:LINE: check failed: COND" and why, on stderr) and exits 1.
 *   qmp-linux bench SOCKET [REQUESTS]
 *       Round-trip latency (one request in flight) of query-status and
 *       query-mtree, and query-status requests/s with 1 and 16 clients
 *       (separate processes, one request in flight each).  Prints
 *       "QMP-BENCH key=value ..." lines.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qmp_client.h"
#include "tests/common/check.h"

static char *dump(json_t *j)
{
    static char buf[2048];
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    snprintf(buf, sizeof(buf), "%s", s ? s : "(nothing: connection closed)");
    free(s);
    return buf;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void msleep(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* The "return" of a command that must succeed (a new reference). */
static json_t *ok(QClient *c, const char *name, const char *args)
{
    json_t *r = qc_cmdf(c, name, args);
    json_t *ret = json_object_get(r, "return");
    CHECK(ret, "%s answered %s", name, dump(r));
    json_incref(ret);
    json_decref(r);
    return ret;
}

static const char *error_class(json_t *r)
{
    return json_string_value(json_object_get(json_object_get(r, "error"), "class"));
}

static const char *error_desc(json_t *r)
{
    const char *d = json_string_value(json_object_get(json_object_get(r, "error"), "desc"));
    return d ? d : "";
}

static const char *status_of(QClient *c)
{
    static char st[32];
    json_t *r = ok(c, "query-status", NULL);
    snprintf(st, sizeof(st), "%s", json_string_value(json_object_get(r, "status")));
    bool running = json_is_true(json_object_get(r, "running"));
    json_decref(r);
    CHECK(running == !strcmp(st, "running"), "query-status: running flag disagrees with '%s'", st);
    return st;
}

/* Lines starting "TICK" in the guest's console log so far. */
static int ticks(const char *log)
{
    FILE *f = fopen(log, "r");
    if (!f)
        return 0;
    char line[512];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        n += !strncmp(line, "TICK", 4);
    fclose(f);
    return n;
}

/* Waits (up to 20 s) for the heartbeat to pass `than`; false if it did not. */
static bool ticks_pass(const char *log, int than)
{
    for (int i = 0; i < 200; i++) {
        if (ticks(log) > than)
            return true;
        msleep(100);
    }
    return false;
}

static json_t *wait_event(QClient *c, const char *name)
{
    json_t *e = qc_wait_event(c, name);
    CHECK(e, "no %s event before the connection closed", name);
    CHECK(json_is_object(json_object_get(e, "timestamp")) &&
              json_is_integer(json_object_get(json_object_get(e, "timestamp"), "seconds")),
          "%s event without a timestamp: %s", name, dump(e));
    return e;
}

static void session_greeting(const char *sock, QClient **out)
{
    QClient *c = qc_connect(sock);
    CHECK(c, "connect %s: %s", sock, strerror(errno));
    json_t *g = qc_read(c);
    json_t *q = json_object_get(g, "QMP");
    CHECK(json_is_object(json_object_get(q, "version")) &&
              json_is_array(json_object_get(q, "capabilities")),
          "greeting %s", dump(g));
    json_decref(g);
    json_t *r = qc_cmd(c, "query-status", NULL);
    CHECK(r && !strcmp(error_class(r) ? error_class(r) : "", "CommandNotFound"),
          "query-status before negotiation answered %s", dump(r));
    json_decref(r);
    json_decref(ok(c, "qmp_capabilities", NULL));
    r = qc_cmd(c, "qmp_capabilities", NULL);
    CHECK(r && error_class(r), "a second qmp_capabilities answered %s", dump(r));
    json_decref(r);
    json_t *cmds = ok(c, "query-commands", NULL);
    bool has_pd = false;
    size_t i;
    json_t *e;
    json_array_foreach(cmds, i, e)
        has_pd |= !strcmp(json_string_value(json_object_get(e, "name")), "system_powerdown");
    json_decref(cmds);
    CHECK(has_pd, "query-commands lacks system_powerdown");
    printf("ok: greeting, CommandNotFound before negotiation, qmp_capabilities, "
           "query-commands lists system_powerdown\n");
    *out = c;
}

static void session_stop_cont(QClient *c, QClient *obs, const char *log)
{
    CHECK(!strcmp(status_of(c), "running"), "query-status: '%s', not running", status_of(c));
    CHECK(ticks_pass(log, ticks(log)), "no heartbeat from the guest while running");
    json_decref(ok(c, "stop", NULL));
    json_decref(wait_event(obs, "STOP"));
    CHECK(!strcmp(status_of(c), "paused"), "after stop: '%s'", status_of(c));
    msleep(300); /* a line being written when stop came */
    int frozen = ticks(log);
    msleep(2500);
    CHECK(ticks(log) == frozen, "the guest printed %d heartbeats while paused",
          ticks(log) - frozen);
    char *s = NULL;
    json_t *h = ok(c, "human-monitor-command", "{\"command-line\": \"info status\"}");
    s = strdup(json_string_value(h));
    json_decref(h);
    CHECK(s && strstr(s, "paused"), "info status while paused: '%s'", s ? s : "");
    free(s);
    json_decref(ok(c, "cont", NULL));
    json_decref(wait_event(obs, "RESUME"));
    CHECK(!strcmp(status_of(c), "running"), "after cont: '%s'", status_of(c));
    CHECK(ticks_pass(log, frozen), "no heartbeat after cont");
    printf("ok: query-status running; stop -> STOP event, paused, heartbeat frozen for "
           "2.5 s at %d; cont -> RESUME event, running, heartbeat again\n",
           frozen);
}

static void session_mtree(QClient *c)
{
    json_t *t = ok(c, "query-mtree", NULL);
    bool mem = false, io = false, virtio = false, ged = false, serial = false;
    size_t i, k;
    json_t *e, *fv, *r;
    json_array_foreach(json_object_get(t, "address-spaces"), i, e)
    {
        const char *n = json_string_value(json_object_get(e, "name"));
        mem |= n && !strcmp(n, "memory");
        io |= n && !strcmp(n, "I/O");
    }
    json_array_foreach(json_object_get(t, "flatviews"), i, fv)
    {
        json_array_foreach(json_object_get(fv, "ranges"), k, r)
        {
            const char *reg = json_string_value(json_object_get(r, "region"));
            const char *start = json_string_value(json_object_get(r, "start"));
            if (!reg || !start)
                continue;
            virtio |= !strncmp(reg, "virtio-", 7) && !strncmp(start, "0xfeb", 5);
            ged |= !strcmp(reg, "acpi-ged") && !strcmp(start, "0x610");
            serial |= !strcmp(reg, "serial") && !strcmp(start, "0x3f8");
        }
    }
    CHECK(mem && io, "query-mtree address spaces: %s", dump(json_object_get(t, "address-spaces")));
    CHECK(virtio && ged && serial, "query-mtree FlatViews lack%s%s%s",
          virtio ? "" : " virtio-mmio at 0xfeb00000", ged ? "" : " acpi-ged at 0x610",
          serial ? "" : " serial at 0x3f8");
    json_t *slots = json_object_get(t, "kvm-slots");
    bool low_ram = false;
    json_array_foreach(slots, i, e)
    {
        const char *reg = json_string_value(json_object_get(e, "region"));
        const char *gpa = json_string_value(json_object_get(e, "gpa"));
        low_ram |= reg && gpa && !strcmp(reg, "microvm.ram") && !strcmp(gpa, "0x0");
    }
    CHECK(low_ram && (json_int_t)json_array_size(slots) ==
                         json_integer_value(json_object_get(t, "kvm-slots-total")),
          "query-mtree KVM slots: %s", dump(slots));
    size_t nslots = json_array_size(slots);
    json_decref(t);

    json_t *h = ok(c, "human-monitor-command", "{\"command-line\": \"info mtree\"}");
    const char *s = json_string_value(h);
    CHECK(s && strstr(s, "address-space: memory") && strstr(s, "address-space: I/O") &&
              strstr(s, "microvm.ram") && strstr(s, "virtio-") &&
              strstr(s, "0000000000000610-0000000000000613 (prio 0, i/o): acpi-ged") &&
              strstr(s, "00000000000003f8-00000000000003ff (prio 0, i/o): serial"),
          "info mtree:\n%s", s ? s : "(not a string)");
    json_decref(h);
    printf("ok: query-mtree: memory and I/O, virtio-mmio, acpi-ged, serial ranges, %zu KVM "
           "slot(s) with microvm.ram at 0; info mtree shows the same regions\n",
           nslots);
}

static void session_bad_requests(QClient *c, const char *log)
{
    static const struct {
        const char *line, *cls;
    } cases[] = {
        { "{\"execute\": \"query-status\",}", "GenericError" }, /* invalid JSON */
        { "{\"execute\" \"query-status\"}", "GenericError" },   /* no colon */
        { "[\"query-status\"]", "GenericError" },               /* not an object */
        { "{\"execute\": \"no-such-command\", \"id\": 1}", "CommandNotFound" },
        { "{\"execute\": \"human-monitor-command\", \"id\": 2}", "GenericError" },
        { "{\"execute\": \"human-monitor-command\", \"arguments\": {\"command-line\": 5}, "
          "\"id\": 3}",
          "GenericError" },
        { "{\"execute\": \"query-status\", \"arguments\": {\"x\": 1}, \"id\": 4}", "GenericError" },
        { "\x01\x02\xff", "GenericError" },
    };
    int before = ticks(log);
    size_t n = sizeof(cases) / sizeof(cases[0]);
    for (size_t i = 0; i < n; i++) {
        char line[512];
        snprintf(line, sizeof(line), "%s\n", cases[i].line);
        CHECK(qc_send_raw(c, line, strlen(line)), "send failed");
        json_t *r;
        while ((r = qc_read(c)) && json_object_get(r, "event"))
            json_decref(r);
        CHECK(r && error_class(r) && !strcmp(error_class(r), cases[i].cls),
              "'%s' answered %s (expected %s)", cases[i].line, dump(r), cases[i].cls);
        json_decref(r);
    }
    /* A request spread over lines waits for its closing brace (QMP is a
     * stream of JSON values, not of lines). */
    static const char split[] = "{\"execute\":\n\"query-status\",\n\"id\": \"split\"\n}\n";
    CHECK(qc_send_raw(c, split, strlen(split)), "send failed");
    json_t *sr;
    while ((sr = qc_read(c)) && json_object_get(sr, "event"))
        json_decref(sr);
    CHECK(sr && json_object_get(sr, "return") &&
              !strcmp(json_string_value(json_object_get(sr, "id")) ?: "", "split"),
          "a request over four lines answered %s", dump(sr));
    json_decref(sr);
    /* A line over 1 MiB: one error, the rest discarded, then service. */
    size_t big = (3u << 20) / 2;
    char *junk = malloc(big + 100);
    CHECK(junk, "out of memory");
    memset(junk, 'x', big);
    junk[0] = '{';
    int k = snprintf(junk + big, 100, "\n{\"execute\":\"query-status\",\"id\":\"after\"}\n");
    CHECK(qc_send_raw(c, junk, big + (size_t)k), "send failed");
    free(junk);
    json_t *r = qc_read(c);
    CHECK(r && error_class(r) && strstr(error_desc(r), "exceeds"), "1.5 MiB line: %s", dump(r));
    json_decref(r);
    r = qc_read(c);
    CHECK(r && json_object_get(r, "return"), "after the long line: %s", dump(r));
    json_decref(r);
    CHECK(!strcmp(status_of(c), "running"), "after bad requests: '%s'", status_of(c));
    CHECK(ticks_pass(log, before), "the guest's heartbeat stopped during the bad requests");
    printf("ok: %zu bad requests and a 1.5 MiB line answered with errors, a request over four "
           "lines answered; the connection "
           "and the guest (heartbeat %d -> %d) kept going\n",
           n, before, ticks(log));
}

static void session_powerdown(QClient *c, QClient *obs)
{
    json_t *r = ok(c, "system_powerdown", NULL);
    CHECK(json_is_object(r) && json_object_size(r) == 0, "system_powerdown returned %s", dump(r));
    json_decref(r);
    json_decref(wait_event(obs, "POWERDOWN"));
    json_t *e = wait_event(obs, "SHUTDOWN");
    json_t *d = json_object_get(e, "data");
    CHECK(json_is_true(json_object_get(d, "guest")) &&
              !strcmp(json_string_value(json_object_get(d, "reason")), "guest-shutdown"),
          "SHUTDOWN event %s (expected guest: true, reason guest-shutdown)", dump(e));
    json_decref(e);
    json_t *m;
    while ((m = qc_read(obs)))
        json_decref(m); /* until strata closes the connection */
    printf("ok: system_powerdown -> {} and POWERDOWN; the guest powered off: SHUTDOWN "
           "(guest: true, guest-shutdown), connection closed\n");
}

static int session(const char *sock, const char *log)
{
    QClient *c, *obs;
    session_greeting(sock, &c);
    obs = qc_open(sock);
    session_stop_cont(c, obs, log);
    session_mtree(c);
    session_bad_requests(c, log);
    session_powerdown(c, obs);
    qc_close(c);
    qc_close(obs);
    printf("QMP-LINUX PASS\n");
    return 0;
}

/* ---- figures ------------------------------------------------------------------ */

/* Sends a prepared request line and reads until its reply (skipping events). */
static void call(QClient *c, const char *line, size_t len)
{
    CHECK(qc_send_raw(c, line, len), "send failed");
    for (;;) {
        json_t *m = qc_read(c);
        CHECK(m, "connection closed during the benchmark");
        bool ev = json_object_get(m, "event") != NULL;
        CHECK(ev || json_object_get(m, "return"), "benchmark request answered %s", dump(m));
        json_decref(m);
        if (!ev)
            return;
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void latency(const char *sock, const char *cmd, int n)
{
    QClient *c = qc_open(sock);
    char line[128];
    int len = snprintf(line, sizeof(line), "{\"execute\":\"%s\"}\n", cmd);
    for (int i = 0; i < 50; i++)
        call(c, line, (size_t)len);
    json_t *r = qc_cmd(c, cmd, NULL);
    char *text = r ? json_dumps(r, JSON_COMPACT) : NULL;
    size_t bytes = text ? strlen(text) : 0;
    free(text);
    json_decref(r);
    double *us = malloc(sizeof(double) * (size_t)n), sum = 0;
    CHECK(us, "out of memory");
    for (int i = 0; i < n; i++) {
        double t0 = now_s();
        call(c, line, (size_t)len);
        us[i] = (now_s() - t0) * 1e6;
        sum += us[i];
    }
    qsort(us, (size_t)n, sizeof(double), cmp_double);
    printf("QMP-BENCH latency cmd=%s n=%d mean_us=%.1f median_us=%.1f p99_us=%.1f "
           "reply_bytes=%zu\n",
           cmd, n, sum / n, us[n / 2], us[(n * 99) / 100 - (n >= 100)], bytes);
    free(us);
    qc_close(c);
}

static void throughput(const char *sock, int clients, int n)
{
    int go[2], res[2];
    CHECK(pipe(go) == 0 && pipe(res) == 0, "pipe: %s", strerror(errno));
    static const char line[] = "{\"execute\":\"query-status\"}\n";
    for (int k = 0; k < clients; k++) {
        pid_t p = fork();
        CHECK(p >= 0, "fork: %s", strerror(errno));
        if (p)
            continue;
        close(go[1]);
        close(res[0]);
        QClient *c = qc_open(sock);
        call(c, line, sizeof(line) - 1);
        char b;
        ssize_t r = read(go[0], &b, 1); /* returns 0 when the parent closes it */
        (void)r;
        double span[2] = { now_s(), 0 };
        for (int i = 0; i < n; i++)
            call(c, line, sizeof(line) - 1);
        span[1] = now_s();
        CHECK(write(res[1], span, sizeof(span)) == sizeof(span), "result pipe");
        qc_close(c);
        _exit(0);
    }
    close(go[0]);
    close(res[1]);
    msleep(300); /* every client connected and negotiated */
    close(go[1]);
    double t0 = 1e300, t1 = 0;
    int got = 0;
    double span[2];
    while (read(res[0], span, sizeof(span)) == sizeof(span)) {
        t0 = span[0] < t0 ? span[0] : t0;
        t1 = span[1] > t1 ? span[1] : t1;
        got++;
    }
    close(res[0]);
    int failed = 0, st;
    while (wait(&st) > 0)
        failed += !WIFEXITED(st) || WEXITSTATUS(st) != 0;
    CHECK(got == clients && !failed, "%d of %d benchmark clients failed", clients - got, clients);
    printf("QMP-BENCH throughput clients=%d requests=%d seconds=%.3f req_per_s=%.0f\n", clients,
           clients * n, t1 - t0, clients * n / (t1 - t0));
}

static int bench(const char *sock, int n)
{
    latency(sock, "query-status", n);
    latency(sock, "query-mtree", n / 4 > 100 ? n / 4 : 100);
    throughput(sock, 1, n);
    throughput(sock, 16, n / 4 > 100 ? n / 4 : 100);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 4 && !strcmp(argv[1], "session"))
        return session(argv[2], argv[3]);
    if ((argc == 3 || argc == 4) && !strcmp(argv[1], "bench")) {
        int n = argc == 4 ? atoi(argv[3]) : 2000;
        if (n < 100) {
            fprintf(stderr, "qmp-linux: bench: REQUESTS '%s': at least 100\n", argv[3]);
            return 2;
        }
        return bench(argv[2], n);
    }
    fprintf(stderr, "usage: qmp-linux session SOCKET SERIAL_LOG | bench SOCKET [REQUESTS]\n");
    return 2;
}
