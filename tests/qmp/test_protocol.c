/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the QMP server (vmm/qmp.c) without a VM: the server runs
 * its epoll loop on a thread with a few fake commands, the test speaks to
 * it over the socket.  Covers what the kvm-labelled integration test
 * covers for the protocol, so hosts without /dev/kvm still test it, plus
 * the output cap (a client that never reads while events pile up is
 * dropped, the others are not).
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

#include "qmp_client.h"
#include "vmm/qmp.h"

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

static const QmpArg echo_args[] = {
    { "s", QMP_ARG_STRING, false }, { "i", QMP_ARG_INT, true }, { "b", QMP_ARG_BOOL, true },
    { "o", QMP_ARG_OBJECT, true }, { "a", QMP_ARG_ARRAY, true }, { "x", QMP_ARG_ANY, true },
    { NULL, 0, false },
};
static const QmpArg fail_args[] = { { "why", QMP_ARG_STRING, false }, { NULL, 0, false } };
static const QmpArg flood_args[] = {
    { "count", QMP_ARG_INT, false }, { "size", QMP_ARG_INT, false }, { NULL, 0, false },
};
static const QmpCommand cmds[] = {
    { "echo", c_echo, echo_args },
    { "fail", c_fail, fail_args },
    { "flood", c_flood, flood_args },
    { "clients", c_clients, NULL },
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
    srv.qmp = qmp_server_new(srv.path, srv.epfd, cmds, sizeof(cmds) / sizeof(cmds[0]), NULL,
                             err, sizeof(err));
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
    assert_int_not_equal(access(srv.path, F_OK), 0);    /* socket removed */
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
    assert_string_equal(s, "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 0, "
                           "\"major\": 0}, \"package\": \"strata\"}, \"capabilities\": []}}");
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
    assert_int_equal(json_array_size(json_object_get(r, "return")), 6);
    json_decref(r);
    qc_close(c);
}

static void test_arguments(void **state)
{
    QClient *c = qc_open(srv.path);
    json_t *r = qc_cmdf(c, "echo", "{\"s\": \"str\", \"i\": 5, \"b\": true, \"o\": {}, "
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
    expect_err(qc_cmdf(c, "echo", "{\"s\": \"\", \"o\": []}"), "GenericError",
               "expected: object");
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
    const char *lines[] = {
        "{", "}", "nul", "[]", "\"s\"", "true", "{\"execute\": null}", "{\"arguments\": {}}",
        "{\"execute\": \"echo\", \"arguments\": 1}", "{\"execute\": \"echo\", \"exec-oob\": 1}",
        "\xff\xfe", "{\"execute\": \"a\\u0000b\"}", "{\"execute\": \"echo\"} x",
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

static void test_many_clients_and_events(void **state)
{
    enum { N = 100 };
    QClient *c[N];
    for (int i = 0; i < N; i++)
        c[i] = qc_open(srv.path);
    QClient *raw = qc_connect(srv.path);            /* not negotiated */
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
    assert_int_equal(json_integer_value(json_object_get(r, "return")), 1);   /* slow dropped */
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
    json_decref(qc_read(c));        /* greeting */
    json_decref(qc_read(c));        /* capabilities */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greeting_and_negotiation),
        cmocka_unit_test(test_arguments),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_many_clients_and_events),
        cmocka_unit_test(test_output_cap_drops_only_the_slow_client),
        cmocka_unit_test(test_vanishing_clients),
        cmocka_unit_test(test_stale_socket_and_conflicts),
    };
    return cmocka_run_group_tests(tests, start, stop);
}
