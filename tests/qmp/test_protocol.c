/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the QMP server (vmm/control/qmp.c) without a VM: the server
 * runs its epoll loop on a thread with a few fake commands, the test speaks to
 * it over the socket.  Covers what the kvm-labelled integration test
 * covers for the protocol, so hosts without /dev/kvm still test it, plus
 * the output cap (a client that never reads while events pile up is
 * dropped, the others are not) and the memory bounds of issue 12: the
 * shared buffer pool, back-pressure inside a line of many requests, the
 * full table and the idle timeout.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <poll.h>
#include <time.h>

#include "qmp_client.h"
#include "vmm/control/qmp-limits.h"
#include "vmm/control/qmp.h"

typedef struct Server {
    QmpServer *qmp;
    int epfd, wakefd;
    EvSource wake;
    bool stop;
    pthread_t thread;
    char path[96];
    char dir[64];
} Server;

static Server srv;

static json_t *c_echo(void *o, QmpClient *c, json_t *args, QmpError *err)
{
    return json_deep_copy(args);
}

static json_t *c_fail(void *o, QmpClient *c, json_t *args, QmpError *err)
{
    qmp_error_set(err, "failed on purpose: %s", json_string_value(json_object_get(args, "why")));
    return NULL;
}

/* Emits `count` events of `size` bytes of payload each. */
static json_t *c_flood(void *o, QmpClient *c, json_t *args, QmpError *err)
{
    json_int_t n = json_integer_value(json_object_get(args, "count"));
    json_int_t size = json_integer_value(json_object_get(args, "size"));
    if (n < 0 || size < 0 || size > (1 << 20)) {
        qmp_error_set(err, "bad flood");
        return NULL;
    }
    char *blob = malloc((size_t)size + 1);
    memset(blob, 'e', (size_t)size);
    blob[size] = 0;
    for (json_int_t i = 0; i < n; i++)
        qmp_server_event(srv.qmp, "FLOOD", json_pack("{s:I,s:s}", "i", i, "blob", blob));
    free(blob);
    return json_object();
}

static json_t *c_clients(void *o, QmpClient *c, json_t *args, QmpError *err)
{
    return json_integer(qmp_server_nr_clients(srv.qmp));
}

static unsigned ticks; /* "tick" commands run (atomic: server thread) */

/* Counts itself, returns a string of `size` bytes. */
static json_t *c_tick(void *o, QmpClient *c, json_t *args, QmpError *err)
{
    json_int_t size = json_integer_value(json_object_get(args, "size"));
    if (size < 0 || size > (1 << 20)) {
        qmp_error_set(err, "bad size");
        return NULL;
    }
    __atomic_add_fetch(&ticks, 1, __ATOMIC_RELAXED);
    char *blob = malloc((size_t)size + 1);
    memset(blob, 't', (size_t)size);
    blob[size] = 0;
    json_t *r = json_string(blob);
    free(blob);
    return r;
}

static const QmpArg echo_args[] = {
    { "s", QMP_ARG_STRING, false },
    { "i", QMP_ARG_INT, true },
    { "b", QMP_ARG_BOOL, true },
    { "o", QMP_ARG_OBJECT, true },
    { "a", QMP_ARG_ARRAY, true },
    { "x", QMP_ARG_ANY, true },
    { NULL, 0, false },
};
static const QmpArg fail_args[] = { { "why", QMP_ARG_STRING, false }, { NULL, 0, false } };
static const QmpArg flood_args[] = {
    { "count", QMP_ARG_INT, false },
    { "size", QMP_ARG_INT, false },
    { NULL, 0, false },
};
static const QmpArg tick_args[] = { { "size", QMP_ARG_INT, false }, { NULL, 0, false } };
static const QmpCommand cmds[] = {
    { "echo", c_echo, echo_args, NULL },    { "fail", c_fail, fail_args, NULL },
    { "flood", c_flood, flood_args, NULL }, { "clients", c_clients, NULL, NULL },
    { "tick", c_tick, tick_args, NULL },
};

static void on_wake(EvSource *s, uint32_t ev)
{
    uint64_t n;
    (void)!read(srv.wakefd, &n, sizeof(n));
    srv.stop = true;
}

static void *loop(void *arg)
{
    struct epoll_event evs[32];
    while (!srv.stop) {
        int n = epoll_wait(srv.epfd, evs, 32, -1);
        for (int i = 0; i < n; i++) {
            EvSource *s = evs[i].data.ptr;
            s->handler(s, evs[i].events);
        }
        qmp_server_reap(srv.qmp);
    }
    return NULL;
}

static int start(void **state)
{
    memset(&srv, 0, sizeof(srv));
    snprintf(srv.dir, sizeof(srv.dir), "/tmp/strata-qmpu-XXXXXX");
    assert_non_null(mkdtemp(srv.dir));
    snprintf(srv.path, sizeof(srv.path), "%s/s", srv.dir);
    srv.epfd = epoll_create1(0);
    srv.wakefd = eventfd(0, EFD_NONBLOCK);
    srv.wake.handler = on_wake;
    assert_int_equal(ev_add(srv.epfd, srv.wakefd, EPOLLIN, &srv.wake), 0);
    char err[256];
    srv.qmp = qmp_server_new(srv.path, srv.epfd, cmds, sizeof(cmds) / sizeof(cmds[0]), NULL, err,
                             sizeof(err));
    if (!srv.qmp)
        fail_msg("%s", err);
    pthread_create(&srv.thread, NULL, loop, NULL);
    return 0;
}

static int stop(void **state)
{
    uint64_t one = 1;
    (void)!write(srv.wakefd, &one, sizeof(one));
    pthread_join(srv.thread, NULL);
    qmp_server_free(srv.qmp);
    close(srv.epfd);
    close(srv.wakefd);
    assert_int_not_equal(access(srv.path, F_OK), 0); /* socket removed */
    rmdir(srv.dir);
    return 0;
}

static const char *cls(json_t *r)
{
    return json_string_value(json_object_get(json_object_get(r, "error"), "class"));
}

static const char *desc(json_t *r)
{
    return json_string_value(json_object_get(json_object_get(r, "error"), "desc"));
}

static void expect_err(json_t *r, const char *c, const char *sub)
{
    if (!r)
        fail_msg("no reply");
    if (!cls(r) || strcmp(cls(r), c) || !strstr(desc(r), sub))
        fail_msg("expected %s '%s', got %s", c, sub, json_dumps(r, 0));
    json_decref(r);
}

static void test_greeting_and_negotiation(void **state)
{
    QClient *c = qc_connect(srv.path);
    assert_non_null(c);
    json_t *g = qc_read(c);
    char *s = json_dumps(g, 0);
    /* the version is strata's, the one `strata --version` prints
     * (STRATA_VERSION, "0.1": major 0, minor 1, micro 0) */
    int v[3] = { 0, 0, 0 };
    assert_true(sscanf(STRATA_VERSION, "%d.%d.%d", &v[0], &v[1], &v[2]) >= 2);
    char want[200];
    snprintf(want, sizeof(want),
             "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": %d, \"minor\": %d, "
             "\"major\": %d}, \"package\": \"strata\"}, \"capabilities\": []}}",
             v[2], v[1], v[0]);
    assert_string_equal(s, want);
    free(s);
    json_decref(g);
    expect_err(qc_cmdf(c, "echo", "{\"s\": \"x\"}"), "CommandNotFound", "Expecting capabilities");
    expect_err(qc_cmdf(c, "nope", NULL), "CommandNotFound", "Expecting capabilities");
    expect_err(qc_cmdf(c, "qmp_capabilities", "{\"enable\": [\"oob\"]}"), "GenericError",
               "Capability 'oob' not available");
    expect_err(qc_cmdf(c, "qmp_capabilities", "{\"bogus\": 1}"), "GenericError",
               "'bogus' is unexpected");
    json_t *r = qc_cmdf(c, "qmp_capabilities", "{\"enable\": []}");
    assert_non_null(json_object_get(r, "return"));
    json_decref(r);
    expect_err(qc_cmdf(c, "qmp_capabilities", NULL), "CommandNotFound", "already complete");
    r = qc_cmdf(c, "query-commands", NULL);
    assert_int_equal(json_array_size(json_object_get(r, "return")), 3 + 5); /* built-ins + cmds */
    json_decref(r);
    qc_close(c);
}

/* The schema entry named name, or NULL. */
static json_t *schema_entry(json_t *schema, const char *name)
{
    size_t i;
    json_t *e;
    json_array_foreach(schema, i, e)
    {
        if (!strcmp(json_string_value(json_object_get(e, "name")), name))
            return e;
    }
    return NULL;
}

/* query-qmp-schema is made from the served table: every command served
 * (the built-ins and this test's table) is in it, each argument with its
 * name, type and optional flag. */
static void test_schema(void **state)
{
    QClient *c = qc_open(srv.path);
    json_t *r = qc_cmdf(c, "query-qmp-schema", NULL);
    json_t *schema = json_object_get(r, "return");
    assert_true(json_is_array(schema));
    json_t *q = qc_cmdf(c, "query-commands", NULL);
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(q, "return"), i, e)
    {
        const char *name = json_string_value(json_object_get(e, "name"));
        json_t *se = schema_entry(schema, name);
        if (!se || strcmp(json_string_value(json_object_get(se, "meta-type")), "command"))
            fail_msg("the schema lacks the command %s", name);
        assert_string_equal(json_string_value(json_object_get(se, "ret-type")), "any");
        json_t *at = schema_entry(schema, json_string_value(json_object_get(se, "arg-type")));
        if (!at || strcmp(json_string_value(json_object_get(at, "meta-type")), "object"))
            fail_msg("%s: no object type for its arguments", name);
    }
    json_decref(q);
    const char *want_types[] = { "str", "int", "bool", "any", "any", "[any]" };
    for (size_t k = 0; k < sizeof(cmds) / sizeof(cmds[0]); k++) {
        json_t *se = schema_entry(schema, cmds[k].name);
        assert_non_null(se);
        json_t *at = schema_entry(schema, json_string_value(json_object_get(se, "arg-type")));
        json_t *members = json_object_get(at, "members");
        size_t n = 0;
        for (const QmpArg *a = cmds[k].args; a && a->name; a++, n++) {
            json_t *m = json_array_get(members, n);
            assert_string_equal(json_string_value(json_object_get(m, "name")), a->name);
            const char *t = json_string_value(json_object_get(m, "type"));
            const char *want = a->type == QMP_ARG_STRING  ? want_types[0]
                               : a->type == QMP_ARG_INT   ? want_types[1]
                               : a->type == QMP_ARG_BOOL  ? want_types[2]
                               : a->type == QMP_ARG_ARRAY ? want_types[5]
                                                          : want_types[3];
            assert_string_equal(t, want);
            /* QEMU marks an optional member with "default": null */
            assert_int_equal(json_object_get(m, "default") != NULL, a->optional);
        }
        assert_int_equal(json_array_size(members), n);
        /* and every type a member names is described */
        json_array_foreach(members, i, e)
            assert_non_null(schema_entry(schema, json_string_value(json_object_get(e, "type"))));
    }
    json_decref(r);
    qc_close(c);
}

static void test_arguments(void **state)
{
    QClient *c = qc_open(srv.path);
    json_t *r = qc_cmdf(c, "echo",
                        "{\"s\": \"str\", \"i\": 5, \"b\": true, \"o\": {}, "
                        "\"a\": [1], \"x\": null}");
    json_t *ret = json_object_get(r, "return");
    assert_string_equal(json_string_value(json_object_get(ret, "s")), "str");
    assert_int_equal(json_integer_value(json_object_get(ret, "i")), 5);
    json_decref(r);
    expect_err(qc_cmdf(c, "echo", NULL), "GenericError", "Parameter 's' is missing");
    expect_err(qc_cmdf(c, "echo", "{\"s\": 1}"), "GenericError",
               "Invalid parameter type for 's', expected: string");
    expect_err(qc_cmdf(c, "echo", "{\"s\": \"\", \"i\": \"5\"}"), "GenericError", "expected: int");
    expect_err(qc_cmdf(c, "echo", "{\"s\": \"\", \"i\": 1.0}"), "GenericError", "expected: int");
    expect_err(qc_cmdf(c, "echo", "{\"s\": \"\", \"b\": 0}"), "GenericError", "expected: bool");
    expect_err(qc_cmdf(c, "echo", "{\"s\": \"\", \"o\": []}"), "GenericError", "expected: object");
    expect_err(qc_cmdf(c, "echo", "{\"s\": \"\", \"a\": {}}"), "GenericError", "expected: array");
    expect_err(qc_cmdf(c, "echo", "{\"s\": \"\", \"zz\": 1}"), "GenericError",
               "'zz' is unexpected");
    expect_err(qc_cmdf(c, "fail", "{\"why\": \"because\"}"), "GenericError",
               "failed on purpose: because");
    expect_err(qc_cmdf(c, "clients", "{\"a\": 1}"), "GenericError", "'a' is unexpected");
    qc_close(c);
}

static void test_malformed(void **state)
{
    QClient *c = qc_open(srv.path);
    /* each is a whole value, or ends one (a request may span lines: a lone
     * "{" would wait for the rest) */
    const char *lines[] = {
        "{]",
        "}",
        "nul",
        "[]",
        "\"s\"",
        "true",
        "{\"execute\": null}",
        "{\"arguments\": {}}",
        "{\"execute\": \"echo\", \"arguments\": 1}",
        "{\"execute\": \"echo\", \"exec-oob\": 1}",
        "\xff\xfe",
        "{\"execute\": \"a\\u0000b\"}",
        "{\"execute\": \"echo\"} x",
    };
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        char buf[256];
        int n = snprintf(buf, sizeof(buf), "%s\n", lines[i]);
        assert_true(qc_send_raw(c, buf, (size_t)n));
        json_t *r = qc_read(c);
        if (!r || !json_object_get(r, "error"))
            fail_msg("'%s' answered %s", lines[i], r ? json_dumps(r, 0) : "nothing");
        json_decref(r);
    }
    /* the last line had a good request, then junk: one reply each */
    json_t *r = qc_read(c);
    assert_non_null(r);
    json_decref(r);
    /* an over-long line split across many writes */
    char *chunk = malloc(100000);
    memset(chunk, ' ', 100000);
    chunk[0] = '{';
    for (int i = 0; i < 15; i++)
        assert_true(qc_send_raw(c, chunk, 100000));
    assert_true(qc_send_raw(c, "\"more\"\n", 7));
    free(chunk);
    expect_err(qc_read(c), "GenericError", "exceeds 1048576 bytes");
    assert_false(qc_readable(c)); /* one error, the rest of the line skipped */
    r = qc_cmdf(c, "clients", NULL);
    assert_non_null(json_object_get(r, "return"));
    json_decref(r);
    /* a long line that is valid JSON under the limit is fine */
    size_t big = 900000;
    char *req = malloc(big + 64);
    int n = sprintf(req, "{\"execute\":\"echo\",\"arguments\":{\"s\":\"");
    memset(req + n, 'a', big);
    strcpy(req + n + big, "\"},\"id\":9}\n");
    assert_true(qc_send_raw(c, req, strlen(req)));
    free(req);
    r = qc_read(c);
    assert_int_equal(json_string_length(json_object_get(json_object_get(r, "return"), "s")), big);
    json_decref(r);
    qc_close(c);
}

/* The reply to a request whose id is `id`; fails the test otherwise. */
static void expect_return(QClient *c, json_int_t id)
{
    json_t *r = qc_read(c);
    if (!r || !json_object_get(r, "return") || json_integer_value(json_object_get(r, "id")) != id)
        fail_msg("expected the return of id %lld, got %s", (long long)id,
                 r ? json_dumps(r, 0) : "nothing");
    json_decref(r);
}

static void send_str(QClient *c, const char *s)
{
    assert_true(qc_send_raw(c, s, strlen(s)));
}

/* QEMU's framing: a pretty-printed request over several lines (a string
 * holding braces, an escaped quote and a backslash), two requests on one
 * line, a request with no newline after it at all. */
static void test_framing_lines(void **state)
{
    QClient *c = qc_open(srv.path);
    qc_set_timeout(c, 10000);
    send_str(c, "{\n"
                "    \"execute\": \"echo\",\n"
                "    \"arguments\": {\n"
                "        \"s\": \"}]{[ \\\" \\\\\",\n"
                "        \"a\": [\n            1,\n            {}\n        ]\n"
                "    },\n"
                "    \"id\": 1\n"
                "}\n");
    json_t *r = qc_read(c);
    assert_non_null(r);
    assert_int_equal(json_integer_value(json_object_get(r, "id")), 1);
    assert_string_equal(json_string_value(json_object_get(json_object_get(r, "return"), "s")),
                        "}]{[ \" \\");
    json_decref(r);
    send_str(c, "{\"execute\":\"clients\",\"id\":2}{\"execute\":\"clients\",\"id\":3}"
                "  {\"execute\":\"clients\",\"id\":4}\n");
    expect_return(c, 2);
    expect_return(c, 3);
    expect_return(c, 4);
    /* the end of the value is the end of the request: no newline needed */
    send_str(c, "{\"execute\":\"clients\",\"id\":5}");
    expect_return(c, 5);
    /* a request ending on the line where the next begins */
    send_str(c, "{\"execute\":\"clients\",\n\"id\":6} {\"execute\":\n\"clients\",\"id\":7}\r\n");
    expect_return(c, 6);
    expect_return(c, 7);
    qc_close(c);
}

/* One request written a byte at a time, each byte its own write(): no
 * answer before its last byte, exactly one after. */
static void test_framing_byte_by_byte(void **state)
{
    QClient *c = qc_open(srv.path);
    qc_set_timeout(c, 10000);
    const char *req =
        "{ \"execute\" : \"echo\", \"arguments\": {\"s\": \"a}b\\\"{\"},\n \"id\": 8 }";
    size_t n = strlen(req);
    struct timespec ts = { 0, 1000000L };
    for (size_t i = 0; i < n; i++) {
        assert_true(qc_send_raw(c, req + i, 1));
        nanosleep(&ts, NULL);
        if (i + 1 < n && qc_readable(c))
            fail_msg("an answer after %zu of %zu bytes", i + 1, n);
    }
    json_t *r = qc_read(c);
    assert_non_null(r);
    assert_int_equal(json_integer_value(json_object_get(r, "id")), 8);
    assert_string_equal(json_string_value(json_object_get(json_object_get(r, "return"), "s")),
                        "a}b\"{");
    json_decref(r);
    nanosleep(&ts, NULL);
    assert_false(qc_readable(c));
    qc_close(c);
}

/* Garbage before a request: one error for it, then the request runs (an
 * invalid byte resynchronises at the next bracket, as QEMU's lexer; a stray
 * scalar is a value of its own). */
static void test_framing_garbage(void **state)
{
    QClient *c = qc_open(srv.path);
    qc_set_timeout(c, 10000);
    send_str(c, "\xff\xfe junk junk {\"execute\":\"clients\",\"id\":10}\n");
    expect_err(qc_read(c), "GenericError", "invalid byte 0xff");
    expect_return(c, 10);
    send_str(c, "garbage {\"execute\":\"clients\",\"id\":11}\n");
    expect_err(qc_read(c), "GenericError", "JSON parse error");
    expect_return(c, 11);
    /* 0xFF in the middle of a request drops it (QEMU's reset), the next runs */
    send_str(c, "{\"execute\":\"clients\",\n\xff\n{\"execute\":\"clients\",\"id\":12}\n");
    expect_err(qc_read(c), "GenericError", "invalid byte 0xff");
    expect_return(c, 12);
    /* a raw control character inside a string */
    send_str(c, "{\"execute\":\"cli\x01nts\",\"id\":1}\n{\"execute\":\"clients\",\"id\":13}\n");
    expect_err(qc_read(c), "GenericError", "invalid byte 0x01");
    expect_return(c, 13);
    /* a value that closes what it never opened ends there: one error */
    send_str(c, "{\"execute\":\"clients\"]\n{\"execute\":\"clients\",\"id\":14}\n");
    expect_err(qc_read(c), "GenericError", "JSON parse error");
    expect_return(c, 14);
    assert_false(qc_readable(c));
    qc_close(c);
}

/* QMP_MAX_DEPTH levels are served, one more is one error and the rest of
 * its line skipped; the next line is served. */
static void test_framing_nesting(void **state)
{
    QClient *c = qc_open(srv.path);
    qc_set_timeout(c, 10000);
    for (int extra = 0; extra <= 1; extra++) {
        /* {"execute":..,"arguments":{"s":"","x":[[..]]}}: the request and
         * its arguments are two levels, the arrays the rest */
        int arrays = QMP_MAX_DEPTH - 2 + extra;
        char *req = malloc((size_t)arrays * 2 + 200);
        int n = sprintf(req, "{\"execute\":\"echo\",\"arguments\":{\"s\":\"\",\"x\":");
        memset(req + n, '[', (size_t)arrays);
        n += arrays;
        memset(req + n, ']', (size_t)arrays);
        n += arrays;
        n += sprintf(req + n, "},\"id\":20}\n{\"execute\":\"clients\",\"id\":21}\n");
        assert_true(qc_send_raw(c, req, (size_t)n));
        free(req);
        if (extra)
            expect_err(qc_read(c), "GenericError", "nesting depth exceeds 1024");
        else
            expect_return(c, 20);
        expect_return(c, 21);
    }
    assert_false(qc_readable(c));
    qc_close(c);
}

/* A request over QMP_MAX_REQUEST bytes spread over many lines: one error,
 * then the line after the one where it went over is read afresh. */
static void test_framing_oversized(void **state)
{
    QClient *c = qc_open(srv.path);
    qc_set_timeout(c, 10000);
    size_t lines = 20, per = QMP_MAX_REQUEST / 16;
    char *buf = malloc(per + 2);
    send_str(c, "{\"execute\":\"echo\",\"arguments\":{\"s\":\"\",\"x\":[\n");
    for (size_t i = 0; i < lines; i++) {
        memset(buf, ' ', per);
        buf[0] = '1';
        buf[per] = ',';
        buf[per + 1] = '\n';
        assert_true(qc_send_raw(c, buf, per + 2));
    }
    free(buf);
    send_str(c, "1]}}\n{\"execute\":\"clients\",\"id\":30}\n");
    expect_err(qc_read(c), "GenericError", "exceeds 1048576 bytes");
    /* the lines after the one where it went over are parsed afresh: their
     * numbers and commas are stray values, each one error, then service */
    json_t *r;
    int errors = 0;
    while ((r = qc_read(c)) && json_object_get(r, "error")) {
        errors++;
        json_decref(r);
    }
    assert_non_null(r);
    assert_int_equal(json_integer_value(json_object_get(r, "id")), 30);
    json_decref(r);
    assert_true(errors > 0);
    qc_close(c);
}

static void test_many_clients_and_events(void **state)
{
    enum { N = 100 };
    QClient *c[N];
    for (int i = 0; i < N; i++)
        c[i] = qc_open(srv.path);
    QClient *raw = qc_connect(srv.path); /* not negotiated */
    json_decref(qc_read(raw));
    json_t *r = qc_cmdf(c[0], "clients", NULL);
    assert_int_equal(json_integer_value(json_object_get(r, "return")), N + 1);
    json_decref(r);
    r = qc_cmdf(c[0], "flood", "{\"count\": 3, \"size\": 10}");
    json_decref(r);
    for (int i = 0; i < N; i++) {
        for (int k = 0; k < 3; k++) {
            json_t *e = qc_wait_event(c[i], "FLOOD");
            assert_non_null(e);
            assert_int_equal(json_integer_value(json_object_get(json_object_get(e, "data"), "i")),
                             k);
            assert_non_null(json_object_get(json_object_get(e, "timestamp"), "microseconds"));
            json_decref(e);
        }
    }
    /* the un-negotiated client got none of them */
    assert_true(qc_send_raw(raw, "{\"execute\":\"qmp_capabilities\",\"id\":1}\n", 38));
    r = qc_read(raw);
    assert_non_null(json_object_get(r, "return"));
    json_decref(r);
    for (int i = 0; i < N; i++)
        qc_close(c[i]);
    qc_close(raw);
}

static void test_output_cap_drops_only_the_slow_client(void **state)
{
    QClient *slow = qc_open(srv.path);
    QClient *fast = qc_open(srv.path);
    /* 40 MiB of events in 1 MiB steps: over the cap for a client that never
     * reads; the fast one reads each step before asking for the next. */
    for (int step = 0; step < 40; step++) {
        json_t *r = qc_cmdf(fast, "flood", "{\"count\": 1, \"size\": 1048576}");
        assert_non_null(json_object_get(r, "return"));
        json_decref(r);
        json_t *e = qc_wait_event(fast, "FLOOD");
        assert_non_null(e);
        json_decref(e);
    }
    json_t *r = qc_cmdf(fast, "clients", NULL);
    assert_int_equal(json_integer_value(json_object_get(r, "return")), 1); /* slow dropped */
    json_decref(r);
    /* The slow one reads what was buffered, then EOF. */
    json_t *m;
    int got = 0;
    while ((m = qc_read(slow))) {
        got++;
        json_decref(m);
    }
    assert_true(got < 40);
    qc_close(slow);
    qc_close(fast);
}

static void test_vanishing_clients(void **state)
{
    for (int i = 0; i < 20; i++) {
        QClient *c = qc_connect(srv.path);
        if (i % 2)
            qc_send_raw(c, "{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"fl", 43);
        else
            for (int k = 0; k < 200; k++)
                qc_send_raw(c, "{\"execute\":\"query-commands\"}\n", 29);
        qc_close(c);
    }
    /* half-close: the request still gets its answer */
    QClient *c = qc_connect(srv.path);
    const char *req = "{\"execute\":\"qmp_capabilities\",\"id\":1}\n"
                      "{\"execute\":\"clients\",\"id\":2}";
    qc_send_raw(c, req, strlen(req));
    shutdown(c->fd, SHUT_WR);
    json_decref(qc_read(c)); /* greeting */
    json_decref(qc_read(c)); /* capabilities */
    json_t *r = qc_read(c);
    assert_int_equal(json_integer_value(json_object_get(r, "id")), 2);
    assert_non_null(json_object_get(r, "return"));
    json_decref(r);
    json_t *extra = qc_read(c);
    if (extra)
        fail_msg("after the last reply: %s", json_dumps(extra, 0));
    qc_close(c);
    c = qc_open(srv.path);
    r = qc_cmdf(c, "clients", NULL);
    assert_int_equal(json_integer_value(json_object_get(r, "return")), 1);
    json_decref(r);
    qc_close(c);
}

static void test_stale_socket_and_conflicts(void **state)
{
    char err[256];
    int ep = epoll_create1(0);
    /* a live server is not replaced */
    assert_null(qmp_server_new(srv.path, ep, cmds, 1, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "another process is listening"));
    /* a regular file is not replaced */
    char file[96];
    snprintf(file, sizeof(file), "%s/file", srv.dir);
    fclose(fopen(file, "w"));
    assert_null(qmp_server_new(file, ep, cmds, 1, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "not a socket"));
    unlink(file);
    close(ep);
}

static void test_pool_accounting(void **state)
{
    QmpPool pool = { 0, 768 << 10 };
    char *a = NULL, *b = NULL;
    size_t ca = 0, cb = 0;
    /* within the base: nothing charged */
    assert_int_equal(qmp_buf_reserve(&pool, &a, &ca, 4096, 1 << 20, 100), 0);
    assert_int_equal(ca, 4096);
    assert_int_equal(pool.used, 0);
    /* beyond it: doubling, the excess charged */
    assert_int_equal(qmp_buf_reserve(&pool, &a, &ca, 4096, 1 << 20, 5000), 0);
    assert_int_equal(ca, 8192);
    assert_int_equal(pool.used, 4096);
    /* the pool short of a doubling (to 1 MiB): only what is needed, in pages */
    assert_int_equal(qmp_buf_reserve(&pool, &b, &cb, 4096, 2 << 20, 600000), 0);
    assert_int_equal(cb, 602112);
    assert_int_equal(pool.used, 4096 + 602112 - 4096);
    /* short even of that: refused, the buffer unchanged */
    assert_int_equal(qmp_buf_reserve(&pool, &b, &cb, 4096, 2 << 20, 900000), -ENOSPC);
    assert_int_equal(cb, 602112);
    assert_int_equal(pool.used, 602112);
    /* over the buffer's own limit: refused */
    assert_int_equal(qmp_buf_reserve(&pool, &b, &cb, 4096, 700000, 700001), -ENOSPC);
    qmp_buf_free(&pool, &b, &cb, 4096);
    assert_null(b);
    assert_int_equal(pool.used, 4096);
    /* trim: back to the base once at most half of it is used */
    qmp_buf_trim(&pool, &a, &ca, 4096, 3000);
    assert_int_equal(ca, 8192);
    qmp_buf_trim(&pool, &a, &ca, 4096, 2048);
    assert_int_equal(ca, 4096);
    assert_int_equal(pool.used, 0);
    qmp_buf_free(&pool, &a, &ca, 4096);
    /* tokens: structure outside strings only, escapes honoured */
    const char *t = "{\"a\": [1, 2], \"b\\\"{[,:\": \"x,y\"}";
    assert_int_equal(qmp_count_tokens(t, strlen(t)), 6);
}

/* One line of 2000 requests with 16 KiB replies from a client that does not
 * read: they wait for its output to drain (not all run at once), and none is
 * lost: all 2000 replies come, in order, once it reads. */
static void test_backpressure_within_a_line(void **state)
{
    QClient *c = qc_open(srv.path);
    enum { N = 2000, SIZE = 16384 };
    char *line = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&line, &len);
    for (int k = 0; k < N; k++)
        fprintf(f, "{\"execute\":\"tick\",\"arguments\":{\"size\":%d},\"id\":%d} ", SIZE, k);
    fputc('\n', f);
    fclose(f);
    __atomic_store_n(&ticks, 0, __ATOMIC_RELAXED);
    assert_true(qc_send_raw(c, line, len));
    free(line);
    struct timespec ts = { 0, 500 * 1000000L };
    nanosleep(&ts, NULL);
    /* the rest waits: only what the socket and QMP_OUT_HIGH hold has run */
    unsigned ran = __atomic_load_n(&ticks, __ATOMIC_RELAXED);
    if (ran >= N)
        fail_msg("all %u requests of the line ran for a client not reading", ran);
    QClient *other = qc_open(srv.path); /* others are served */
    json_t *r = qc_cmdf(other, "clients", NULL);
    assert_non_null(json_object_get(r, "return"));
    json_decref(r);
    qc_close(other);
    for (int k = 0; k < N; k++) {
        r = qc_read(c);
        if (!r || json_integer_value(json_object_get(r, "id")) != k ||
            json_string_length(json_object_get(r, "return")) != SIZE)
            fail_msg("reply %d: %s", k, r ? "wrong" : "none");
        json_decref(r);
    }
    assert_int_equal(__atomic_load_n(&ticks, __ATOMIC_RELAXED), N);
    qc_close(c);
}

/* Clients holding long unterminated lines share one pool: past it a line
 * is refused with an error, the others are served, and what they held is
 * handed back when they leave. */
static void test_pool_refuses_long_lines(void **state)
{
    enum { N = 80, PART = 900 * 1024 };
    QClient *h[N];
    bool refused[N] = { false };
    char *junk = malloc(PART);
    memset(junk, ' ', PART);
    junk[0] = '{';
    for (int i = 0; i < N; i++) {
        h[i] = qc_connect(srv.path);
        assert_non_null(h[i]);
        qc_set_timeout(h[i], 30000);
        json_decref(qc_read(h[i])); /* greeting */
        assert_true(qc_send_raw(h[i], junk, PART));
    }
    /* 80 * 900 KiB is well over the 36 MiB pool, each line holding at least
     * 900 KiB less its base: past what fits, lines are refused */
    int want = N - (int)(QMP_POOL / (PART - QMP_IN_BASE)) - 1, nref = 0;
    for (int round = 0; round < 200 && nref < want; round++) {
        for (int i = 0; i < N; i++) {
            struct pollfd p = { .fd = h[i]->fd, .events = POLLIN };
            if (refused[i] || poll(&p, 1, 0) <= 0)
                continue;
            json_t *r = qc_read(h[i]);
            if (!r || !desc(r) || !strstr(desc(r), "shared QMP buffer space"))
                fail_msg("hoarder %d: %s", i, r ? json_dumps(r, 0) : "closed");
            json_decref(r);
            refused[i] = true;
            nref++;
        }
        struct timespec ts = { 0, 10 * 1000000L };
        nanosleep(&ts, NULL);
    }
    if (nref < want)
        fail_msg("%d of %d long lines refused, expected %d or more", nref, N, want);
    QClient *c = qc_open(srv.path);
    json_t *r = qc_cmdf(c, "clients", NULL);
    assert_non_null(json_object_get(r, "return"));
    json_decref(r);
    for (int i = 0; i < N; i++)
        qc_close(h[i]);
    /* the pool is back: a long line is served again */
    junk[PART - 1] = 0;
    char *req = malloc(PART + 100);
    int n = snprintf(req, PART + 100,
                     "{\"execute\":\"tick\",\"arguments\":{\"size\":1},"
                     "\"id\":\"%.*s\"}\n",
                     PART - 1000, junk + 1);
    r = NULL;
    for (int k = 0; k < 100 && !r; k++) { /* the closes reach the server */
        assert_true(qc_send_raw(c, req, (size_t)n));
        r = qc_read(c);
        if (r && !json_object_get(r, "return")) {
            json_decref(r);
            r = NULL;
            struct timespec ts = { 0, 20 * 1000000L };
            nanosleep(&ts, NULL);
        }
    }
    assert_non_null(r);
    json_decref(r);
    free(req);
    free(junk);
    qc_close(c);
}

/* A full table of idle clients does not lock a newcomer out: the client
 * idle the longest is evicted, with an error line. */
static void test_full_table_evicts_idlest(void **state)
{
    QClient *idle[QMP_MAX_CLIENTS];
    for (int i = 0; i < QMP_MAX_CLIENTS; i++) {
        idle[i] = qc_connect(srv.path);
        assert_non_null(idle[i]);
        qc_set_timeout(idle[i], 30000);
        json_t *g = qc_read(idle[i]);
        if (!g || !json_object_get(g, "QMP"))
            fail_msg("client %d of %d: no greeting", i, QMP_MAX_CLIENTS);
        json_decref(g);
    }
    struct timespec ts = { 1, 200 * 1000000L }; /* > QMP_EVICT_MIN_IDLE_MS */
    nanosleep(&ts, NULL);
    QClient *n = qc_connect(srv.path);
    qc_set_timeout(n, 30000);
    json_t *g = qc_read(n);
    if (!g || !json_object_get(g, "QMP"))
        fail_msg("the newcomer: %s", g ? json_dumps(g, 0) : "nothing");
    json_decref(g);
    expect_err(qc_read(idle[0]), "GenericError", "slots taken");
    assert_null(qc_read(idle[0]));
    for (int i = 1; i < QMP_MAX_CLIENTS; i++)
        assert_false(qc_readable(idle[i]));
    for (int i = 0; i < QMP_MAX_CLIENTS; i++)
        qc_close(idle[i]);
    qc_close(n);
}

/* With STRATA_QMP_IDLE_TIMEOUT_MS=300, on a server of its own driven here:
 * an idle client is closed after about 300 ms, with an error line. */
static void test_idle_timeout(void **state)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/idle", srv.dir);
    int ep = epoll_create1(0);
    char err[256];
    setenv("STRATA_QMP_IDLE_TIMEOUT_MS", "x", 1);
    assert_null(qmp_server_new(path, ep, cmds, 1, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "STRATA_QMP_IDLE_TIMEOUT_MS=x"));
    setenv("STRATA_QMP_IDLE_TIMEOUT_MS", "300", 1);
    QmpServer *q = qmp_server_new(path, ep, cmds, 1, NULL, err, sizeof(err));
    unsetenv("STRATA_QMP_IDLE_TIMEOUT_MS");
    assert_non_null(q);
    QClient *c = qc_connect(path);
    assert_non_null(c);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct pollfd p = { .fd = c->fd, .events = POLLIN };
    bool closed = false;
    for (int rounds = 0; rounds < 1000 && !closed; rounds++) {
        struct epoll_event evs[8];
        int k = epoll_wait(ep, evs, 8, 10);
        for (int i = 0; i < k; i++) {
            EvSource *s = evs[i].data.ptr;
            s->handler(s, evs[i].events);
        }
        qmp_server_reap(q);
        /* the greeting, then the error line, then EOF */
        while (!closed && poll(&p, 1, 0) > 0) {
            char buf[4096];
            ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
            closed = n <= 0;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    assert_true(closed);
    assert_true(ms >= 250);
    assert_int_equal(qmp_server_nr_clients(q), 0);
    qc_close(c);
    qmp_server_free(q);
    close(ep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greeting_and_negotiation),
        cmocka_unit_test(test_arguments),
        cmocka_unit_test(test_schema),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_framing_lines),
        cmocka_unit_test(test_framing_byte_by_byte),
        cmocka_unit_test(test_framing_garbage),
        cmocka_unit_test(test_framing_nesting),
        cmocka_unit_test(test_framing_oversized),
        cmocka_unit_test(test_many_clients_and_events),
        cmocka_unit_test(test_output_cap_drops_only_the_slow_client),
        cmocka_unit_test(test_vanishing_clients),
        cmocka_unit_test(test_stale_socket_and_conflicts),
        cmocka_unit_test(test_pool_accounting),
        cmocka_unit_test(test_backpressure_within_a_line),
        cmocka_unit_test(test_pool_refuses_long_lines),
        cmocka_unit_test(test_full_table_evicts_idlest),
        cmocka_unit_test(test_idle_timeout),
    };
    return cmocka_run_group_tests(tests, start, stop);
}
