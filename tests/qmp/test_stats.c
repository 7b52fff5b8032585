/* SPDX-License-Identifier: MIT */
/*
 * The statistics' JSON (vmm/control/stats-json.c): every counter under its
 * own name, nothing else; and the --metrics writer (vmm/control/metrics.c):
 * one parseable object per line, a failing file reported once and still
 * tried, the timer in an epoll loop.  No /dev/kvm.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm/control/metrics.h"
#include "vmm/control/stats-json.h"
#include "vmm/loop.h"

static json_int_t get(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v))
        fail_msg("no integer \"%s\"", key);
    return json_integer_value(v);
}

static void test_blk_json(void **state)
{
    (void)state;
    /* distinct values, so a field under another's name shows */
    VirtioBlkStats s;
    uint64_t *f = (uint64_t *)&s;
    for (size_t i = 0; i < sizeof(s) / sizeof(uint64_t); i++)
        f[i] = 1000 + i;
    json_t *o = stats_blk_json(&s);
    assert_int_equal(get(o, "rd_bytes"), s.rd_bytes);
    assert_int_equal(get(o, "wr_bytes"), s.wr_bytes);
    assert_int_equal(get(o, "rd_operations"), s.rd_operations);
    assert_int_equal(get(o, "wr_operations"), s.wr_operations);
    assert_int_equal(get(o, "flush_operations"), s.flush_operations);
    assert_int_equal(get(o, "failed_rd_operations"), s.failed_rd_operations);
    assert_int_equal(get(o, "failed_wr_operations"), s.failed_wr_operations);
    assert_int_equal(get(o, "failed_flush_operations"), s.failed_flush_operations);
    assert_int_equal(get(o, "invalid_rd_operations"), s.invalid_rd_operations);
    assert_int_equal(get(o, "invalid_wr_operations"), s.invalid_wr_operations);
    assert_int_equal(get(o, "invalid_flush_operations"), 0);
    assert_int_equal(get(o, "wr_highest_offset"), s.wr_highest_offset);
    assert_int_equal(get(o, "x-get-id-operations"), s.get_id_operations);
    assert_int_equal(get(o, "x-unsupported-operations"), s.unsupported_operations);
    assert_int_equal(get(o, "x-malformed-requests"), s.malformed_requests);
    assert_int_equal(get(o, "x-throttled"), s.throttled);
    assert_int_equal(get(o, "x-throttled-ns"), s.throttled_ns);
    assert_true(json_is_true(json_object_get(o, "account_invalid")));
    assert_true(json_is_true(json_object_get(o, "account_failed")));
    /* every counter of the struct appears, plus the three constants */
    assert_int_equal(json_object_size(o), sizeof(s) / sizeof(uint64_t) + 3);
    json_decref(o);
}

static void test_exits_json(void **state)
{
    (void)state;
    KvmVcpuExitStats e;
    uint64_t want = 0;
    for (unsigned k = 0; k < KVM_EXITS_NR; k++)
        want += e.exits[k] = 3 * k + 1;
    uint64_t total = 0;
    json_t *o = stats_exits_json(&e, &total);
    assert_int_equal(total, want);
    assert_int_equal(json_object_size(o), KVM_EXITS_NR); /* names are distinct */
    assert_int_equal(get(o, "io"), e.exits[KVM_EXITS_IO]);
    assert_int_equal(get(o, "mmio"), e.exits[KVM_EXITS_MMIO]);
    assert_int_equal(get(o, "hlt"), e.exits[KVM_EXITS_HLT]);
    assert_int_equal(get(o, "shutdown"), e.exits[KVM_EXITS_SHUTDOWN]);
    assert_int_equal(get(o, "intr"), e.exits[KVM_EXITS_INTR]);
    assert_int_equal(get(o, "other"), e.exits[KVM_EXITS_OTHER]);
    assert_string_equal(kvm_exit_kind_name(KVM_EXITS_NR), "?");
    json_decref(o);
}

static void test_net_and_queue_json(void **state)
{
    (void)state;
    VirtioNetStats n = { .rx_packets = 1,
                         .rx_bytes = 2,
                         .rx_dropped = 3,
                         .tx_packets = 4,
                         .tx_bytes = 5,
                         .tx_dropped = 6,
                         .rx_throttled = 11,
                         .rx_throttled_ns = 12,
                         .tx_throttled = 13,
                         .tx_throttled_ns = 14 };
    json_t *o = stats_net_json(&n);
    assert_int_equal(get(o, "rx-packets"), 1);
    assert_int_equal(get(o, "rx-bytes"), 2);
    assert_int_equal(get(o, "rx-dropped"), 3);
    assert_int_equal(get(o, "tx-packets"), 4);
    assert_int_equal(get(o, "tx-bytes"), 5);
    assert_int_equal(get(o, "tx-dropped"), 6);
    assert_int_equal(get(o, "rx-throttled"), 11);
    assert_int_equal(get(o, "rx-throttled-ns"), 12);
    assert_int_equal(get(o, "tx-throttled"), 13);
    assert_int_equal(get(o, "tx-throttled-ns"), 14);
    assert_int_equal(json_object_size(o), sizeof(n) / sizeof(uint64_t));
    json_decref(o);
    VirtioQueueStats q = { .kicks = 7, .interrupts = 8, .suppressed = 9 };
    o = stats_queue_json(2, &q);
    assert_int_equal(get(o, "queue"), 2);
    assert_int_equal(get(o, "kicks"), 7);
    assert_int_equal(get(o, "interrupts"), 8);
    assert_int_equal(get(o, "suppressed"), 9);
    json_decref(o);
}

static int calls;

static json_t *collect(void *opaque)
{
    (void)opaque;
    calls++;
    return json_pack("{s:i,s:s}", "n", calls, "text", "a\nb"); /* a newline, escaped */
}

static char tmp_path[64];

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char buf[4096];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* One object per line, appended to what the file held. */
static void test_metrics_lines(void **state)
{
    (void)state;
    snprintf(tmp_path, sizeof(tmp_path), "/tmp/strata-metrics-XXXXXX");
    int fd = mkstemp(tmp_path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "old\n", 4), 4);
    close(fd);
    calls = 0;
    Metrics *m = metrics_open(tmp_path, 60, -1, collect, NULL);
    assert_non_null(m);
    assert_int_equal(metrics_write(m), 0);
    assert_int_equal(metrics_write(m), 0);
    metrics_close(m);
    char *text = read_all(tmp_path);
    assert_memory_equal(text, "old\n", 4);
    char *line = text + 4;
    for (int i = 1; i <= 2; i++) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        *nl = '\0';
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        assert_non_null(o);
        assert_int_equal(get(o, "n"), i);
        json_decref(o);
        line = nl + 1;
    }
    assert_string_equal(line, "");
    unlink(tmp_path);
}

/* /dev/full: every write fails, the first is reported, none is fatal. */
static void test_metrics_failure_reported_once(void **state)
{
    (void)state;
    char log[] = "/tmp/strata-metrics-err-XXXXXX";
    int lfd = mkstemp(log);
    assert_true(lfd >= 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(lfd, 2);
    Metrics *m = metrics_open("/dev/full", 1, -1, collect, NULL);
    assert_non_null(m);
    assert_int_equal(metrics_write(m), -ENOSPC);
    assert_int_equal(metrics_write(m), -ENOSPC);
    assert_int_equal(metrics_write(m), -ENOSPC);
    assert_int_equal(metrics_failures(m), 3);
    metrics_close(m);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(lfd);
    char *text = read_all(log);
    unlink(log);
    const char *first = strstr(text, "--metrics /dev/full: writing a line failed");
    assert_non_null(first);
    assert_null(strstr(first + 1, "--metrics /dev/full:")); /* once */
    /* a path that cannot be opened is refused at once */
    assert_null(metrics_open("/nonexistent-dir/m", 1, -1, collect, NULL));
}

/* The timer in an epoll loop writes a line every interval. */
static void test_metrics_timer(void **state)
{
    (void)state;
    snprintf(tmp_path, sizeof(tmp_path), "/tmp/strata-metrics-XXXXXX");
    int fd = mkstemp(tmp_path);
    assert_true(fd >= 0);
    close(fd);
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    assert_true(epfd >= 0);
    calls = 0;
    Metrics *m = metrics_open(tmp_path, 1, epfd, collect, NULL);
    assert_non_null(m);
    struct epoll_event ev;
    for (int fired = 0; fired < 2;) {
        int n = epoll_wait(epfd, &ev, 1, 2500);
        assert_int_equal(n, 1); /* within 2.5 s of the last */
        EvSource *src = ev.data.ptr;
        src->handler(src, ev.events);
        fired++;
    }
    metrics_close(m);
    assert_int_equal(calls, 2);
    char *text = read_all(tmp_path);
    assert_non_null(strstr(text, "\"n\":1"));
    assert_non_null(strstr(text, "\"n\":2"));
    close(epfd);
    unlink(tmp_path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blk_json),
        cmocka_unit_test(test_exits_json),
        cmocka_unit_test(test_net_and_queue_json),
        cmocka_unit_test(test_metrics_lines),
        cmocka_unit_test(test_metrics_failure_reported_once),
        cmocka_unit_test(test_metrics_timer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
