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
 *   - 100 clients each holding 900 KiB of an unterminated line, twice.
 * After each: strata answers query-status "running", the guest's counter
 * still advances, and strata's RSS (from /proc) stays within a bound (a
 * second wave of hoarders must not grow it: what the first held was freed).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kvm/kvm.h"
#include "qmp_harness.h"

#define MIB (1u << 20)

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
            case 0:         /* gone at once */
                break;
            case 1:         /* after the greeting */
                json_decref(qc_read(cl[i]));
                break;
            case 2:         /* mid-request */
                qc_send_raw(cl[i], "{\"execute\":\"qmp_capabilities\"}\n{\"exec", 37);
                break;
            default: {      /* a request whose reply it never reads */
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
    printf("ok: 10 rounds of 100 clients connecting and leaving; RSS %ld -> peak %ld KiB\n",
           base, peak);
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
    CHECK(r && json_integer_value(json_object_get(r, "id")) == 77 &&
          json_object_get(r, "return"), "finished line: %s", r ? json_dumps(r, 0) : "none");
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
    /* each client's buffer is bounded by the 1 MiB line limit (+ a read chunk) */
    CHECK(first - base < 100 * 1200 + 32 * 1024, "hoarders: RSS %ld KiB over %ld", first,
          base);
    /* a second wave reuses what the first freed: no growth = no leak */
    long second = hoard_once(c);
    CHECK(second - first < 16 * 1024, "second wave of hoarders: RSS %ld after %ld KiB", second,
          first);
    printf("ok: 100 clients holding 900 KiB each, twice: RSS %ld -> %ld, then %ld KiB\n",
           base, first, second);
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
    hoarders(c, base);
    json_decref(ok(c, "quit", NULL));
    int st = wait_status(strata_pid);
    CHECK(st == 0, "quit: exit status %d", st);
    char *err = read_log("stderr.txt");
    CHECK(!strstr(err, "AddressSanitizer") && !strstr(err, "runtime error"),
          "sanitizer report in strata's stderr");
    free(err);
    qc_close(c);
    printf("PASS\n");
    return 0;
}
