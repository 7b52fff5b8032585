/* SPDX-License-Identifier: MIT */
/* Unit tests of the operations parts: the log's lines and levels
 * (vmm/log.h), the serial backends' ring (vmm/ring.h) and their options. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/config.h"
#include "vmm/log.h"
#include "vmm/ring.h"

static void test_level_names(void **state)
{
    LogLevel l = LOG_ERROR;
    static const char *const names[] = { "error", "warn", "info", "debug" };
    for (int i = 0; i < 4; i++) {
        assert_int_equal(log_level_parse(names[i], &l), 0);
        assert_int_equal(l, i);
        assert_string_equal(log_level_name(l), names[i]);
    }
    l = LOG_INFO;
    assert_int_equal(log_level_parse("WARN", &l), -1);
    assert_int_equal(log_level_parse("warning", &l), -1);
    assert_int_equal(log_level_parse("", &l), -1);
    assert_int_equal(log_level_parse(NULL, &l), -1);
    assert_int_equal(l, LOG_INFO); /* untouched on failure */
}

static void test_format_line(void **state)
{
    char buf[256];
    /* 2024-02-29T23:59:58.007Z: a leap day, ms with leading zeros */
    struct timespec ts = { 1709251198, 7999999 };
    size_t n = log_format_line(buf, sizeof(buf), &ts, LOG_INFO, "machine built");
    assert_string_equal(buf, "2024-02-29T23:59:58.007Z info  machine built\n");
    assert_int_equal(n, strlen(buf));
    ts = (struct timespec){ 0, 999000000 };
    log_format_line(buf, sizeof(buf), &ts, LOG_ERROR, "x");
    assert_string_equal(buf, "1970-01-01T00:00:00.999Z error x\n");
    log_format_line(buf, sizeof(buf), &ts, LOG_DEBUG, "two\nlines\r");
    assert_string_equal(buf, "1970-01-01T00:00:00.999Z debug two lines \n");
}

static void test_format_cut(void **state)
{
    char buf[40], msg[100];
    struct timespec ts = { 0, 0 };
    memset(msg, 'a', sizeof(msg) - 1);
    msg[sizeof(msg) - 1] = '\0';
    size_t n = log_format_line(buf, sizeof(buf), &ts, LOG_WARN, msg);
    assert_int_equal(n, sizeof(buf) - 1);
    assert_int_equal(strlen(buf), n);
    assert_memory_equal(buf, "1970-01-01T00:00:00.000Z warn  ", 31);
    assert_string_equal(buf + n - 4, "...\n");
    /* an exact fit is not cut */
    msg[39 - 32] = '\0';
    n = log_format_line(buf, sizeof(buf), &ts, LOG_WARN, msg);
    assert_int_equal(n, 39);
    assert_string_equal(buf + 31, "aaaaaaa\n");
    /* tiny buffers stay terminated */
    assert_int_equal(log_format_line(buf, 1, &ts, LOG_WARN, "m"), 0);
    assert_string_equal(buf, "");
    assert_int_equal(log_format_line(buf, 10, &ts, LOG_WARN, "m"), 9);
    assert_string_equal(buf, "1970-01-0");
}

static char *slurp_fd(int fd)
{
    static char out[8192];
    ssize_t n = pread(fd, out, sizeof(out) - 1, 0);
    out[n > 0 ? n : 0] = '\0';
    return out;
}

/* Which messages reach the file at each level, and their form. */
static void test_levels_to_file(void **state)
{
    char path[] = "/tmp/strata-log-XXXXXX", err[256];
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(log_setup(LOG_INFO, true, path, err, sizeof(err)), 0);
    assert_true(log_enabled(LOG_INFO));
    assert_false(log_enabled(LOG_DEBUG));
    log_msg(LOG_DEBUG, "not %s", "this");
    log_msg(LOG_INFO, "machine built: %u vCPUs", 2u);
    log_msg(LOG_WARN, "a warning");
    log_report("migration to %s completed (downtime %d ms)", "tcp:x:1", 12);
    log_teardown();
    assert_int_equal(log_setup(LOG_WARN, true, path, err, sizeof(err)), 0);
    log_msg(LOG_INFO, "not this either");
    log_report("nor this report");
    log_msg(LOG_ERROR, "an error");
    log_teardown();
    const char *text = slurp_fd(fd);
    assert_null(strstr(text, "this"));
    const char *want[] = { " info  machine built: 2 vCPUs\n", " warn  a warning\n",
                           " info  migration to tcp:x:1 completed (downtime 12 ms)\n",
                           " error an error\n" };
    const char *p = text;
    for (int i = 0; i < 4; i++) {
        /* YYYY-MM-DDTHH:MM:SS.mmmZ then the level */
        assert_int_equal(strlen(p) > 24, 1);
        assert_true(p[4] == '-' && p[7] == '-' && p[10] == 'T' && p[13] == ':' && p[16] == ':' &&
                    p[19] == '.' && p[23] == 'Z');
        const char *nl = strchr(p, '\n');
        assert_non_null(nl);
        assert_int_equal((size_t)(nl + 1 - (p + 24)), strlen(want[i]));
        assert_memory_equal(p + 24, want[i], strlen(want[i]));
        p = nl + 1;
    }
    assert_string_equal(p, "");
    assert_int_equal(log_setup(LOG_WARN, false, "/nonexistent/dir/log", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "--log-file /nonexistent/dir/log: No such file"));
    log_setup(LOG_DEFAULT_LEVEL, false, NULL, err, sizeof(err));
    close(fd);
    unlink(path);
}

/* Reads everything the ring holds, oldest first. */
static size_t drain(ByteRing *r, char *out, size_t cap)
{
    size_t n = 0;
    const uint8_t *p;
    size_t k;
    while ((k = byte_ring_peek(r, &p)) > 0) {
        assert_true(n + k <= cap);
        memcpy(out + n, p, k);
        n += k;
        byte_ring_consume(r, k);
    }
    return n;
}

static void test_ring(void **state)
{
    ByteRing r;
    char out[64];
    assert_int_equal(byte_ring_init(&r, 8), 0);
    assert_int_equal(byte_ring_write(&r, "abcde", 5), 0);
    assert_int_equal(drain(&r, out, sizeof(out)), 5);
    assert_memory_equal(out, "abcde", 5);
    /* wraps: head at 3, 8 bytes in two runs (5 to the end, 3 at the start) */
    byte_ring_write(&r, "abcde", 5);
    byte_ring_consume(&r, 3);
    assert_int_equal(byte_ring_write(&r, "123456", 6), 0);
    const uint8_t *p;
    assert_int_equal(byte_ring_peek(&r, &p), 5);
    assert_memory_equal(p, "de123", 5);
    assert_int_equal(drain(&r, out, sizeof(out)), 8);
    assert_memory_equal(out, "de123456", 8);
    /* overflow keeps the newest 8 bytes and says how many went */
    assert_int_equal(byte_ring_write(&r, "ABCDEF", 6), 0);
    assert_int_equal(byte_ring_write(&r, "GHIJ", 4), 2);
    assert_int_equal(r.len, 8);
    assert_int_equal(drain(&r, out, sizeof(out)), 8);
    assert_memory_equal(out, "CDEFGHIJ", 8);
    /* a write larger than the ring keeps its tail */
    assert_int_equal(byte_ring_write(&r, "xy", 2), 0);
    assert_int_equal(byte_ring_write(&r, "0123456789ab", 12), 6);
    assert_int_equal(drain(&r, out, sizeof(out)), 8);
    assert_memory_equal(out, "456789ab", 8);
    /* partial consumption */
    byte_ring_write(&r, "hello", 5);
    byte_ring_consume(&r, 2);
    byte_ring_consume(&r, 100);
    assert_int_equal(r.len, 0);
    assert_int_equal(byte_ring_peek(&r, &p), 0);
    byte_ring_free(&r);
    assert_int_equal(byte_ring_write(&r, "z", 1), 1); /* freed: holds nothing */
}

/* A long stream through a ring against a model of "the last cap bytes". */
static void test_ring_model(void **state)
{
    ByteRing r;
    enum { CAP = 97 };
    static uint8_t stream[20000], out[CAP];
    assert_int_equal(byte_ring_init(&r, CAP), 0);
    srand(7);
    size_t total = 0, consumed = 0, dropped = 0;
    while (total < sizeof(stream) - 300) {
        size_t n = (size_t)rand() % 250;
        for (size_t i = 0; i < n; i++)
            stream[total + i] = (uint8_t)rand();
        dropped += byte_ring_write(&r, stream + total, n);
        total += n;
        if (rand() % 3 == 0) {
            const uint8_t *p;
            size_t k = byte_ring_peek(&r, &p);
            k = k ? (size_t)rand() % (k + 1) : 0;
            assert_memory_equal(p, stream + consumed + dropped, k);
            byte_ring_consume(&r, k);
            consumed += k;
        }
        assert_int_equal(r.len, total - consumed - dropped);
        assert_true(r.len <= CAP);
    }
    size_t n = drain(&r, (char *)out, sizeof(out));
    assert_memory_equal(out, stream + total - n, n);
    byte_ring_free(&r);
}

static char err[512];

static int parse(VmConfig *c, const char *a, const char *b, const char *d, const char *e)
{
    const char *argv[] = { "--kernel", "k", a, b, d, e, NULL };
    int argc = 2;
    while (argv[argc])
        argc++;
    vm_config_init(c);
    return vm_config_parse_args(c, argc, (char *const *)argv, err, sizeof(err));
}

static void test_options(void **state)
{
    VmConfig c;
    assert_int_equal(parse(&c, NULL, NULL, NULL, NULL), CONFIG_OK);
    assert_int_equal(c.log_level, LOG_WARN);
    assert_false(c.log_level_set || c.daemonize);
    assert_null(c.log_file);
    assert_null(c.pidfile);
    vm_config_free(&c);
    assert_int_equal(parse(&c, "--log-level=debug", "--log-file=/tmp/l", "--serial", "pty"),
                     CONFIG_OK);
    assert_int_equal(c.log_level, LOG_DEBUG);
    assert_true(c.log_level_set);
    assert_string_equal(c.log_file, "/tmp/l");
    assert_int_equal(c.serial, SERIAL_PTY);
    vm_config_free(&c);
    assert_int_equal(parse(&c, "--daemonize", "--pidfile", "/run/p", "--serial=socket=/tmp/s"),
                     CONFIG_OK);
    assert_true(c.daemonize);
    assert_string_equal(c.pidfile, "/run/p");
    assert_int_equal(c.serial, SERIAL_SOCKET);
    assert_string_equal(c.serial_path, "/tmp/s");
    vm_config_free(&c);
    assert_int_equal(parse(&c, "--log-level", "verbose", NULL, NULL), CONFIG_ERROR);
    assert_non_null(strstr(err, "--log-level verbose: expected error, warn, info or debug"));
    vm_config_free(&c);
    assert_int_equal(parse(&c, "--daemonize", NULL, NULL, NULL), CONFIG_ERROR);
    assert_non_null(strstr(err, "--daemonize: the serial port is on stdio"));
    vm_config_free(&c);
    assert_int_equal(parse(&c, "--daemonize", "--serial", "stdio", NULL), CONFIG_ERROR);
    vm_config_free(&c);
    char longp[130] = "socket=";
    memset(longp + 7, 'p', 110);
    assert_int_equal(parse(&c, "--serial", longp, NULL, NULL), CONFIG_ERROR);
    assert_non_null(strstr(err, "socket path too long"));
    vm_config_free(&c);
    const char *json =
        "{\"kernel\":\"k\",\"log-level\":\"info\",\"daemonize\":true,\"serial\":\"none\","
        "\"pidfile\":\"/p\"}";
    vm_config_init(&c);
    assert_int_equal(vm_config_apply_json(&c, json, "t", err, sizeof(err)), 0);
    assert_int_equal(vm_config_check(&c, err, sizeof(err)), 0);
    assert_int_equal(c.log_level, LOG_INFO);
    assert_true(c.daemonize);
    vm_config_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_level_names), cmocka_unit_test(test_format_line),
        cmocka_unit_test(test_format_cut),  cmocka_unit_test(test_levels_to_file),
        cmocka_unit_test(test_ring),        cmocka_unit_test(test_ring_model),
        cmocka_unit_test(test_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
