/* SPDX-License-Identifier: MIT */
/*
 * Control-socket abuse (label kvm), against `strata run` with the hostile
 * guest's "idle" case (it counts at CPL3).  What tests/qmp already covers
 * (bad requests, one 1.5 MiB line, 64 clients at once, a client that never
 * reads) is not repeated; this adds:
 *   - 100 clients connecting and disconnecting, 10 rounds, in every way
 *     (at once, after the greeting, mid-request, after a request);
 *   - lines of just under 1 MiB (served) and of 2 MiB (refused), eight each;
 *   - a client that sends half a line and stalls while others are served,
 *     then finishes it;
 *   - deeply nested JSON: 100k '[', 100k '[' + ']', 20k {"a": ...;
 *   - 100 clients each holding 900 KiB of an unterminated line, twice;
 *   - memory amplification (issue 12, defect 4): 100 clients each sending
 *     one line of 540 `xp /4096b 0` requests (about 30 KB of reply each)
 *     and never reading;
 *   - a full table of idle clients: a newcomer still gets in (the client
 *     idle the longest is evicted);
 *   - with a second strata whose idle timeout is 2 s
 *     (STRATA_QMP_IDLE_TIMEOUT_MS): an idle client and a client that never
 *     reads its output are disconnected, a client that keeps talking is not.
 * After each: strata answers query-status "running", the guest's counter
 * still advances, and strata's RSS (from /proc) stays within a bound: the
 * QMP server's memory budget (QMP_BUDGET, 64 MiB) over the RSS at rest for
 * the hoarders and the amplification (a second wave of hoarders must not
 * grow it: what the first held was freed).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kvm/kvm.h"
#include "qmp_harness.h"
#include "vmm/control/qmp.h"

#define MIB (1u << 20)
#ifndef QMP_BUDGET
#define QMP_BUDGET (64u << 20) /* before the bounds (issue 12) qmp.h had none */
#endif

#if defined(__SANITIZE_ADDRESS__)
#define STRATA_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define STRATA_ASAN 1
#endif
#endif

static long rss_kib(void)
{
    char p[64];
    snprintf(p, sizeof(p), "/proc/%d/status", (int)strata_pid);
    char *s = slurp(p);
    char *v = strstr(s, "VmRSS:");
    long kib = v ? strtol(v + 6, NULL, 10) : -1;
    free(s);
    CHECK(kib > 0, "no VmRSS for strata (pid %d)", (int)strata_pid);
    return kib;
}

/* A report of ASan, LSan or UBSan (not strata's own line saying that
 * --seccomp is off in an ASan build). */
static bool sanitizer_report(const char *err)
{
    return strstr(err, "ERROR: AddressSanitizer") || strstr(err, "ERROR: LeakSanitizer") ||
           strstr(err, "runtime error");
}

/* The VM still runs and answers; the guest still counts. */
static void unharmed(QClient *c, const char *after)
{
    json_t *st = ok(c, "query-status", NULL);
    CHECK(!strcmp(json_string_value(json_object_get(st, "status")), "running"),
          "after %s: status %s", after, json_string_value(json_object_get(st, "status")));
    json_decref(st);
    uint64_t a = read_counter(c);
    for (int i = 0; i < 500 && read_counter(c) == a; i++)
        msleep(2);
    CHECK(read_counter(c) != a, "after %s: the guest stopped counting", after);
}

static void churn(QClient *c, long base)
{
    long peak = 0;
    for (int round = 0; round < 10; round++) {
        QClient *cl[100];
        for (int i = 0; i < 100; i++) {
            cl[i] = qc_connect(sock_path);
            CHECK(cl[i], "round %d client %d: connect: %s", round, i, strerror(errno));
        }
        for (int i = 0; i < 100; i++) {
            switch ((i + round) % 4) {
            case 0: /* gone at once */
                break;
            case 1: /* after the greeting */
                json_decref(qc_read(cl[i]));
                break;
            case 2: /* mid-request */
                qc_send_raw(cl[i], "{\"execute\":\"qmp_capabilities\"}\n{\"exec", 37);
                break;
            default: { /* a request whose reply it never reads */
                static const char req[] = "{\"execute\":\"qmp_capabilities\"}\n"
                                          "{\"execute\":\"query-mtree\"}\n";
                qc_send_raw(cl[i], req, sizeof(req) - 1);
            }
            }
            qc_close(cl[i]);
        }
        long r = rss_kib();
        if (r > peak)
            peak = r;
    }
    unharmed(c, "client churn");
    CHECK(peak - base < 32 * 1024, "client churn: RSS grew from %ld to %ld KiB", base, peak);
    printf("ok: 10 rounds of 100 clients connecting and leaving; RSS %ld -> peak %ld KiB\n", base,
           peak);
}

static void long_lines(QClient *c, long base)
{
    /* just under the limit: served, the 1 MiB id echoed */
    size_t idlen = MIB - 100;
    char *line = malloc(idlen + 200);
    int pre = snprintf(line, 200, "{\"execute\":\"query-status\",\"id\":\"");
    memset(line + pre, 'i', idlen);
    size_t n = (size_t)pre + idlen;
    n += (size_t)snprintf(line + n, 200, "\"}\n");
    CHECK(n <= MIB + 1, "test line is %zu bytes", n);
    for (int k = 0; k < 8; k++) {
        CHECK(qc_send_raw(c, line, n), "send 1 MiB line");
        json_t *r = qc_read(c);
        json_t *id = json_object_get(r, "id");
        CHECK(r && json_object_get(r, "return") && json_string_length(id) == idlen,
              "1 MiB line %d: not served", k);
        json_decref(r);
    }
    free(line);
    /* twice the limit: one error each, then service */
    size_t big = 2 * MIB;
    char *junk = malloc(big + 1);
    memset(junk, '[', big);
    junk[big] = '\n';
    for (int k = 0; k < 8; k++) {
        CHECK(qc_send_raw(c, junk, big + 1), "send 2 MiB line");
        json_t *r = qc_read(c);
        CHECK(r && desc_of(r) && strstr(desc_of(r), "exceeds"), "2 MiB line %d: %s", k,
              r ? json_dumps(r, 0) : "no reply");
        json_decref(r);
    }
    free(junk);
    long r = rss_kib();
    unharmed(c, "long lines");
    CHECK(r - base < 64 * 1024, "long lines: RSS grew from %ld to %ld KiB", base, r);
    printf("ok: 8 lines of 1 MiB served, 8 of 2 MiB refused; RSS %ld KiB\n", r);
}

static void stall(QClient *c)
{
    QClient *s = open_client();
    const char *half = "{\"execute\":\"query-st";
    CHECK(qc_send_raw(s, half, strlen(half)), "send half");
    for (int i = 0; i < 50; i++)
        json_decref(ok(c, "query-status", NULL));
    unharmed(c, "a stalled half line");
    msleep(500);
    CHECK(!qc_readable(s), "the stalled client got an answer to half a line");
    CHECK(qc_send_raw(s, "atus\",\"id\":77}\n", 15), "send rest");
    json_t *r = qc_read(s);
    CHECK(r && json_integer_value(json_object_get(r, "id")) == 77 && json_object_get(r, "return"),
          "finished line: %s", r ? json_dumps(r, 0) : "none");
    json_decref(r);
    qc_close(s);
    printf("ok: a client stalled mid-line for 0.5 s, 50 requests of another served "
           "meanwhile; the finished line answered\n");
}

static void nested(QClient *c, long base)
{
    const size_t depth = 100000;
    char *buf = malloc(2 * depth + 16);
    const char *what[3] = { "100k '['", "100k '[' + ']'", "20k {\"a\":" };
    for (int kind = 0; kind < 3; kind++) {
        size_t n = 0;
        if (kind < 2) {
            memset(buf, '[', depth);
            n = depth;
            if (kind == 1) {
                memset(buf + n, ']', depth);
                n += depth;
            }
        } else {
            for (size_t i = 0; i < depth / 5; i++, n += 5)
                memcpy(buf + n, "{\"a\":", 5);
        }
        buf[n++] = '\n';
        CHECK(qc_send_raw(c, buf, n), "send nested");
        json_t *r = qc_read(c);
        CHECK(r && class_of(r), "%s: no error: %s", what[kind], r ? json_dumps(r, 0) : "none");
        json_decref(r);
    }
    free(buf);
    unharmed(c, "nested JSON");
    long r = rss_kib();
    CHECK(r - base < 64 * 1024, "nested JSON: RSS grew from %ld to %ld KiB", base, r);
    printf("ok: %s, %s and %s answered with errors\n", what[0], what[1], what[2]);
}

/* 100 clients each holding 900 KiB of an unterminated line; returns the
 * RSS while they are connected. */
static long hoard_once(QClient *c)
{
    enum { N = 100 };
    QClient *cl[N];
    size_t part = 900 * 1024;
    char *junk = malloc(part);
    memset(junk, ' ', part);
    junk[0] = '{';
    for (int i = 0; i < N; i++) {
        cl[i] = qc_connect(sock_path);
        CHECK(cl[i], "hoarder %d: connect", i);
        CHECK(qc_send_raw(cl[i], junk, part), "hoarder %d: send", i);
    }
    free(junk);
    json_decref(ok(c, "query-status", NULL));
    long held = rss_kib();
    unharmed(c, "100 clients holding 900 KiB each");
    for (int i = 0; i < N; i++)
        qc_close(cl[i]);
    json_decref(ok(c, "query-status", NULL));
    return held;
}

static void hoarders(QClient *c, long base)
{
    long first = hoard_once(c);
    /* what the clients' buffers hold beyond their base comes from one pool */
    CHECK(first - base < (long)(QMP_BUDGET >> 10),
          "hoarders: RSS %ld KiB over %ld (QMP budget "
          "%u MiB)",
          first, base, QMP_BUDGET >> 20);
    /* a second wave reuses what the first freed: no growth = no leak */
    long second = hoard_once(c);
    CHECK(second - first < 16 * 1024, "second wave of hoarders: RSS %ld after %ld KiB", second,
          first);
    printf("ok: 100 clients holding 900 KiB each, twice: RSS %ld -> %ld, then %ld KiB\n", base,
           first, second);
}

enum { AMP_CLIENTS = 100, AMP_REQS = 540 };

/* qmp_capabilities, then one line of AMP_REQS `xp /4096b 0` (ids 0..). */
static char *amp_line(size_t *len)
{
    char *line = NULL;
    FILE *f = open_memstream(&line, len);
    CHECK(f, "open_memstream: %s", strerror(errno));
    fputs("{\"execute\":\"qmp_capabilities\"}\n", f);
    for (int k = 0; k < AMP_REQS; k++)
        fprintf(f,
                "{\"execute\":\"human-monitor-command\","
                "\"arguments\":{\"command-line\":\"xp /4096b 0\"},\"id\":%d}",
                k);
    fputc('\n', f);
    fclose(f);
    return line;
}

static void peak_rss(long *peak)
{
    long r = rss_kib();
    if (r > *peak)
        *peak = r;
}

/* Issue 12, defect 4: clients that send one line of many requests with big
 * replies and never read.  Their requests must wait (back-pressure) rather
 * than fill memory, the others are served meanwhile, and a client that
 * reads at last gets every reply, in order. */
static void amplify(QClient *c, long base)
{
    size_t len;
    char *line = amp_line(&len);
    QClient *cl[AMP_CLIENTS];
    long before = rss_kib(), peak = before;
    for (int i = 0; i < AMP_CLIENTS; i++) {
        cl[i] = qc_connect(sock_path);
        CHECK(cl[i], "attacker %d: connect: %s", i, strerror(errno));
        CHECK(qc_send_raw(cl[i], line, len), "attacker %d: send", i);
        if (i % 10 == 9) {
            json_decref(ok(c, "query-status", NULL)); /* served meanwhile */
            peak_rss(&peak);
        }
    }
    free(line);
    for (int i = 0; i < 20; i++) { /* 2 s of sampling while c is served */
        json_decref(ok(c, "query-status", NULL));
        peak_rss(&peak);
        msleep(100);
    }
    unharmed(c, "100 clients not reading the replies of 540 xp each");
    peak_rss(&peak);
    printf("amplification: %d clients x one %zu-byte line of %d `xp /4096b 0`, never read: "
           "RSS at rest %ld KiB (%ld before the attack), worst during the attack %ld KiB (+%ld KiB "
           "over rest; QMP budget %u MiB)\n",
           AMP_CLIENTS, len, AMP_REQS, base, before, peak, peak - base, QMP_BUDGET >> 20);
    CHECK(peak - base < (long)(QMP_BUDGET >> 10),
          "amplification: RSS grew from %ld to %ld KiB, "
          "over the QMP budget of %u MiB",
          base, peak, QMP_BUDGET >> 20);
    /* Nothing accepted was dropped: one attacker reads at last. */
    qc_set_timeout(cl[0], 60000);
    json_t *m = qc_read(cl[0]);
    CHECK(m && json_object_get(m, "QMP"), "attacker 0: no greeting");
    json_decref(m);
    m = qc_read(cl[0]);
    CHECK(m && json_object_get(m, "return"), "attacker 0: qmp_capabilities: %s",
          m ? json_dumps(m, 0) : "nothing");
    json_decref(m);
    for (int k = 0; k < AMP_REQS; k++) {
        m = qc_read(cl[0]);
        CHECK(m && json_is_string(json_object_get(m, "return")) &&
                  json_is_integer(json_object_get(m, "id")) &&
                  json_integer_value(json_object_get(m, "id")) == k,
              "attacker 0, reply %d of %d: %s", k, AMP_REQS, m ? json_dumps(m, 0) : "nothing");
        json_decref(m);
    }
    for (int i = 0; i < AMP_CLIENTS; i++)
        qc_close(cl[i]);
    json_decref(ok(c, "query-status", NULL));
    unharmed(c, "the attackers leaving");
    printf("ok: amplification bounded; the others served throughout; a client reading at "
           "last got all %d replies in order\n",
           AMP_REQS);
}

/* QMP_MAX_CLIENTS - 1 idle connections (c holds the last slot) must not
 * lock a newcomer out: the one idle the longest makes room. */
static void full_table(QClient *c)
{
    enum { N = QMP_MAX_CLIENTS - 1 };
    static QClient *idle[N];
    json_decref(ok(c, "query-status", NULL));
    for (int i = 0; i < N; i++) {
        idle[i] = qc_connect(sock_path);
        CHECK(idle[i], "idle client %d: connect: %s", i, strerror(errno));
        qc_set_timeout(idle[i], 30000);
        json_t *g = qc_read(idle[i]);
        CHECK(g && json_object_get(g, "QMP"), "idle client %d of %d: %s", i, N,
              g ? json_dumps(g, 0) : "no greeting");
        json_decref(g);
    }
    msleep(1500);                             /* idle past QMP_EVICT_MIN_IDLE_MS (1 s) */
    json_decref(ok(c, "query-status", NULL)); /* c itself is not idle */
    QClient *n = qc_connect(sock_path);
    CHECK(n, "newcomer: connect: %s", strerror(errno));
    qc_set_timeout(n, 30000);
    json_t *g = qc_read(n);
    CHECK(g && json_object_get(g, "QMP"), "a newcomer to a table of %d idle clients: %s", N,
          g ? json_dumps(g, 0) : "no greeting");
    json_decref(g);
    json_t *r = qc_cmd(n, "qmp_capabilities", NULL);
    CHECK(r && json_object_get(r, "return"), "newcomer: qmp_capabilities failed");
    json_decref(r);
    json_decref(ok(n, "query-status", NULL));
    int gone = -1, ngone = 0;
    for (int i = 0; i < N; i++) {
        if (!qc_readable(idle[i]))
            continue;
        json_t *m = qc_read(idle[i]);
        CHECK(m && desc_of(m) && strstr(desc_of(m), "slots"), "idle client %d: %s", i,
              m ? json_dumps(m, 0) : "closed without a word");
        json_decref(m);
        CHECK(!qc_read(idle[i]), "idle client %d: not closed after its eviction", i);
        gone = i;
        ngone++;
    }
    CHECK(ngone == 1 && gone == 0,
          "%d idle clients evicted (the last: %d), expected 1: the "
          "first",
          ngone, gone);
    char *err = read_log("stderr.txt");
    CHECK(strstr(err, "evicted for a new client"), "no log line for the eviction");
    free(err);
    for (int i = 0; i < N; i++)
        qc_close(idle[i]);
    qc_close(n);
    unharmed(c, "a full table of idle clients");
    printf("ok: %d idle clients filled the table; a newcomer got in, the client idle the "
           "longest was evicted (an error line, a log line)\n",
           N);
}

static long elapsed_ms(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* A second strata with a 2 s idle timeout: an idle client and one that
 * never reads its output are disconnected (logged), one that keeps talking
 * is not. */
static void idle_timeouts(void)
{
    setenv("STRATA_QMP_IDLE_TIMEOUT_MS", "2000", 1);
    strata_pid = spawn("--test-device", "--kernel", HOSTILE_ELF, "--api-socket", sock_path,
                       "--serial", "none", "--cmdline", "case=idle", NULL);
    unsetenv("STRATA_QMP_IDLE_TIMEOUT_MS");
    QClient *g = open_client();
    QClient *i = open_client();
    QClient *h = qc_connect(sock_path);
    CHECK(h, "connect: %s", strerror(errno));
    size_t len;
    char *line = amp_line(&len);
    CHECK(qc_send_raw(h, line, len), "send the never-reading client's line");
    free(line);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct pollfd p = { .fd = i->fd, .events = POLLIN };
    while (poll(&p, 1, 250) == 0 && elapsed_ms(&t0) < 30000)
        json_decref(ok(g, "query-status", NULL)); /* g keeps talking */
    long idle_ms = elapsed_ms(&t0);
    CHECK(p.revents, "an idle client was not disconnected in %ld ms (idle timeout 2 s)", idle_ms);
    qc_set_timeout(i, 30000);
    json_t *m = qc_read(i);
    CHECK(m && desc_of(m) && strstr(desc_of(m), "idle"), "the idle client got %s",
          m ? json_dumps(m, 0) : "no error line");
    json_decref(m);
    CHECK(!qc_read(i), "the idle client was not closed");
    CHECK(idle_ms >= 1500, "the idle client was closed after %ld ms, before its 2 s timeout",
          idle_ms);
    char *err = NULL;
    for (;;) {
        err = read_log("stderr.txt");
        if (strstr(err, "(its output unread)") || elapsed_ms(&t0) > 30000)
            break;
        free(err);
        json_decref(ok(g, "query-status", NULL));
        msleep(250);
    }
    CHECK(strstr(err, "(nothing sent or read)") && strstr(err, "(its output unread)"),
          "no log line for the idle or the never-reading client in 30 s");
    free(err);
    unharmed(g, "idle clients timing out");
    json_decref(ok(g, "quit", NULL));
    int st = wait_status(strata_pid);
    CHECK(st == 0, "quit: exit status %d", st);
    qc_close(g);
    qc_close(i);
    qc_close(h);
    printf("ok: idle timeout 2 s: an idle client closed after %ld ms (an error line, a log "
           "line), a never-reading client too; a talking client kept\n",
           idle_ms);
}

int main(void)
{
    harness_init("abuse");
    counter_addr = elf_symbol(HOSTILE_ELF, "spin_counter");
#ifdef STRATA_ASAN
    /* strata is built like this test: without a quarantine ASan keeps freed
     * memory resident, and RSS would measure ASan, not strata */
    setenv("ASAN_OPTIONS", "quarantine_size_mb=0:thread_local_quarantine_size_kb=0", 1);
#endif
    strata_pid = spawn("--test-device", "--kernel", HOSTILE_ELF, "--api-socket", sock_path,
                       "--serial", "none", "--cmdline", "case=idle", NULL);
    QClient *c = open_client();
    unharmed(c, "start");
    long base = rss_kib();
    churn(c, base);
    long_lines(c, base);
    stall(c);
    nested(c, base);
    amplify(c, base);
    full_table(c);
    hoarders(c, base);
    json_decref(ok(c, "quit", NULL));
    int st = wait_status(strata_pid);
    CHECK(st == 0, "quit: exit status %d", st);
    char *err = read_log("stderr.txt");
    CHECK(!sanitizer_report(err), "sanitizer report in strata's stderr");
    free(err);
    qc_close(c);
    idle_timeouts();
    err = read_log("stderr.txt");
    CHECK(!sanitizer_report(err), "sanitizer report in strata's stderr");
    free(err);
    printf("PASS\n");
    return 0;
}
