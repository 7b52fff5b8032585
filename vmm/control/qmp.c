/* SPDX-License-Identifier: MIT */
/* The QMP server (see qmp.h). */
#include "vmm/control/qmp.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "vmm/control/qmp-limits.h"
#include "vmm/control/qmp-stream.h"
#include "vmm/unix-listen.h"
#include "vmm/version.h"

/*
 * The memory budget (qmp.h has the numbers; a _Static_assert there checks
 * the sum):
 *   QMP_MAX_CLIENTS * (QMP_IN_BASE + QMP_OUT_BASE + QMP_CLIENT_OVERHEAD)
 *     = 128 * (64 + 64 + 2) KiB                                 = 16.25 MiB
 *   + QMP_POOL: every byte of buffer capacity beyond a client's
 *     base, all clients together                                 = 36 MiB
 *   + QMP_TRANSIENT: the one request being run (single thread):
 *     its parse tree (<= QMP_MAX_TOKENS values, ~96 bytes each,
 *     about 3 MiB, plus its strings, <= 1 MiB) and its reply's
 *     text before it is queued (replies over QMP_OUT_CAP, 4 MiB,
 *     are refused)                                               = 8 MiB
 *   = 60.25 MiB <= QMP_BUDGET (64 MiB).
 * A client's input is read in READ_CHUNK steps into a buffer of at most
 * QMP_IN_MAX (the request limit and one chunk); its output is at most
 * QMP_OUT_CAP.  Both are charged by capacity, so what malloc holds for
 * them is what is counted, and shrink back to the base once drained.
 */
#define READ_CHUNK (16u << 10)
#define READS_PER_EVENT 8
#define QMP_IN_MAX (QMP_MAX_REQUEST + READ_CHUNK)

struct QmpClient {
    EvSource src;
    QmpServer *srv;
    QmpClient *next;
    int fd;
    unsigned id;
    bool negotiated;
    bool dead;
    bool eof;
    bool held;          /* output over QMP_OUT_HIGH: requests wait */
    uint32_t mask;      /* epoll events registered */
    QmpScanner scan;    /* where the requests in `in` end */
    uint64_t active_ms; /* when a byte last came in or went out */
    char *in;
    size_t in_len, in_cap;
    char *out;
    size_t out_off, out_len, out_cap;
};

struct QmpServer {
    EvSource src;
    EvSource tick_src; /* the idle timer */
    int epfd;
    int fd;
    int timerfd;
    uint64_t idle_ms; /* 0: clients never time out */
    QmpPool pool;     /* buffer bytes beyond the clients' bases */
    char *path;
    const QmpCommand *cmds;
    size_t ncmds;
    void *opaque;
    QmpClient *clients; /* live */
    QmpClient *dead;    /* closed, freed by qmp_server_reap */
    unsigned nr_clients;
    unsigned next_id;
    bool accepting; /* the socket is in the loop (qmp_server_accepting) */
};

int ev_add(int epfd, int fd, uint32_t events, EvSource *src)
{
    struct epoll_event ev = { .events = events, .data.ptr = src };
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int ev_mod(int epfd, int fd, uint32_t events, EvSource *src)
{
    struct epoll_event ev = { .events = events, .data.ptr = src };
    return epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

int ev_del(int epfd, int fd)
{
    return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL) < 0 ? -errno : 0;
}

void qmp_error_set(QmpError *err, const char *fmt, ...)
{
    va_list ap;
    err->cls = "GenericError";
    va_start(ap, fmt);
    vsnprintf(err->desc, sizeof(err->desc), fmt, ap);
    va_end(ap);
}

/* ---- output ------------------------------------------------------------- */

static void client_close(QmpClient *c, const char *why);
static void client_process(QmpClient *c);

static size_t pending(const QmpClient *c)
{
    return c->out_len - c->out_off;
}

/* Whether c's requests must wait for its output to drain: set over
 * QMP_OUT_HIGH, cleared at QMP_OUT_LOW. */
static bool client_held(QmpClient *c)
{
    if (c->held && pending(c) <= QMP_OUT_LOW)
        c->held = false;
    else if (!c->held && pending(c) > QMP_OUT_HIGH)
        c->held = true;
    return c->held;
}

static void client_update_mask(QmpClient *c)
{
    if (c->dead)
        return;
    uint32_t mask = 0;
    if (pending(c))
        mask |= EPOLLOUT;
    if (!client_held(c) && !c->eof)
        mask |= EPOLLIN;
    if (mask != c->mask) {
        c->mask = mask;
        ev_mod(c->srv->epfd, c->fd, mask, &c->src);
    }
}

/* Sends what it can without blocking; false if the client was closed. */
static bool client_flush(QmpClient *c)
{
    while (pending(c)) {
        ssize_t n = send(c->fd, c->out + c->out_off, pending(c), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c->out_off += (size_t)n;
            c->active_ms = qmp_now_ms();
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        /* A peer that went away (EPIPE, ECONNRESET) is an ordinary end. */
        client_close(c, n < 0 && errno != EPIPE && errno != ECONNRESET ? strerror(errno) : NULL);
        return false;
    }
    if (!pending(c)) {
        c->out_off = c->out_len = 0;
        qmp_buf_trim(&c->srv->pool, &c->out, &c->out_cap, QMP_OUT_BASE, 0);
    } else if (c->out_off > c->out_cap / 2) {
        memmove(c->out, c->out + c->out_off, pending(c));
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    return true;
}

/* Appends s (len bytes) and "\r\n" to c's output: 0, -ENOSPC (over the
 * client's cap or the pool) or -ENOMEM. */
static int queue_line(QmpClient *c, const char *s, size_t len)
{
    if (pending(c) + len + 2 > QMP_OUT_CAP)
        return -ENOSPC;
    if (c->out_len + len + 2 > c->out_cap && c->out_off) {
        memmove(c->out, c->out + c->out_off, pending(c));
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    int r = qmp_buf_reserve(&c->srv->pool, &c->out, &c->out_cap, QMP_OUT_BASE, QMP_OUT_CAP,
                            c->out_len + len + 2);
    if (r < 0)
        return r;
    memcpy(c->out + c->out_len, s, len);
    memcpy(c->out + c->out_len + len, "\r\n", 2);
    c->out_len += len + 2;
    return 0;
}

/* A reply that does not fit c's budget: an error with its id instead (the
 * id too if it is small), or -ENOSPC if even that does not fit. */
static int queue_reply_refused(QmpClient *c, json_t *msg, size_t len)
{
    char desc[200];
    snprintf(desc, sizeof(desc),
             "the reply (%zu bytes) does not fit this client's QMP output "
             "budget now (unread output or a shared buffer pool in use); the command did run",
             len);
    json_t *id = json_object_get(msg, "id");
    json_t *e = json_pack("{s:{s:s,s:s}}", "error", "class", "GenericError", "desc", desc);
    char *s = NULL;
    if (e && id) {
        json_object_set(e, "id", id);
        s = json_dumps(e, JSON_ENSURE_ASCII);
        if (s && strlen(s) > 4096) {
            free(s);
            s = NULL;
            json_object_del(e, "id");
        }
    }
    if (e && !s)
        s = json_dumps(e, JSON_ENSURE_ASCII);
    json_decref(e);
    int r = s ? queue_line(c, s, strlen(s)) : -ENOMEM;
    free(s);
    return r;
}

/* Queues one message (a line) for c, takes a reference-free json value.  A
 * reply (reply: true) that does not fit c's budget is replaced by an error
 * saying so; anything else that does not fit drops c, which is not
 * reading its output. */
static void client_send(QmpClient *c, json_t *msg, bool reply)
{
    if (c->dead)
        return;
    char *s = json_dumps(msg, JSON_ENSURE_ASCII);
    if (!s) {
        client_close(c, "out of memory encoding a reply");
        return;
    }
    size_t len = strlen(s);
    int r = queue_line(c, s, len);
    free(s);
    if (r == -ENOSPC && reply)
        r = queue_reply_refused(c, msg, len);
    if (r == -ENOMEM) {
        client_close(c, "out of memory");
        return;
    }
    if (r < 0) {
        char why[160];
        snprintf(why, sizeof(why),
                 "%s of %zu bytes over its output budget (%zu bytes unread; "
                 "client not reading)",
                 reply ? "a reply" : "a message", len, pending(c));
        client_close(c, why);
        return;
    }
    if (client_flush(c))
        client_update_mask(c);
}

/* A last error line for a client about to be closed, if it can take it now. */
static void client_notify(QmpClient *c, const char *desc)
{
    char line[256];
    int n = snprintf(line, sizeof(line),
                     "{\"error\": {\"class\": \"GenericError\", \"desc\": \"%s\"}}\r\n", desc);
    if (!pending(c) && n > 0 && (size_t)n < sizeof(line))
        (void)!send(c->fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void send_error(QmpClient *c, json_t *id, const char *cls, const char *desc)
{
    json_t *m = json_pack("{s:{s:s,s:s}}", "error", "class", cls, "desc", desc);
    if (m && id)
        json_object_set(m, "id", id);
    if (m)
        client_send(c, m, true);
    json_decref(m);
}

static void send_return(QmpClient *c, json_t *id, json_t *ret /* stolen */)
{
    json_t *m = json_object();
    if (!m) {
        json_decref(ret);
        return;
    }
    json_object_set_new(m, "return", ret);
    if (id)
        json_object_set(m, "id", id);
    client_send(c, m, true);
    json_decref(m);
}

/* ---- built-in commands --------------------------------------------------- */

static json_t *cmd_qmp_capabilities(void *opaque, QmpClient *c, json_t *args, QmpError *err)
{
    json_t *enable = json_object_get(args, "enable");
    size_t i;
    json_t *v;
    json_array_foreach(enable, i, v)
    {
        if (!json_is_string(v)) {
            qmp_error_set(err, "Invalid parameter type for 'enable[%zu]', expected: string", i);
            return NULL;
        }
        qmp_error_set(err, "Capability '%s' not available", json_string_value(v));
        return NULL;
    }
    c->negotiated = true;
    return json_object();
}

static const QmpArg caps_args[] = { { "enable", QMP_ARG_ARRAY, true }, { NULL, 0, false } };

static json_t *cmd_query_commands(void *opaque, QmpClient *c, json_t *args, QmpError *err)
{
    return qmp_server_command_list(c->srv);
}

static json_t *cmd_query_qmp_schema(void *opaque, QmpClient *c, json_t *args, QmpError *err)
{
    return qmp_server_schema(c->srv);
}

/* Served by every server, before its table. */
static const QmpCommand builtins[] = {
    { "qmp_capabilities", cmd_qmp_capabilities, caps_args, NULL },
    { "query-commands", cmd_query_commands, NULL, NULL },
    { "query-qmp-schema", cmd_query_qmp_schema, NULL, NULL },
};
#define NR_BUILTINS (sizeof(builtins) / sizeof(builtins[0]))
static const QmpCommand *const builtin_caps = &builtins[0];

/* The i-th command served: the built-ins, then the server's table. */
static const QmpCommand *served(const QmpServer *srv, size_t i)
{
    return i < NR_BUILTINS ? &builtins[i] : &srv->cmds[i - NR_BUILTINS];
}

static size_t nr_served(const QmpServer *srv)
{
    return NR_BUILTINS + srv->ncmds;
}

json_t *qmp_server_command_list(const QmpServer *srv)
{
    json_t *a = json_array();
    for (size_t i = 0; i < nr_served(srv); i++)
        json_array_append_new(a, json_pack("{s:s}", "name", served(srv, i)->name));
    return a;
}

/* The schema's name of an argument type (QEMU's built-in types; an object
 * argument is free-form to the table, so "any"). */
static const char *schema_type(QmpArgType t)
{
    switch (t) {
    case QMP_ARG_STRING:
        return "str";
    case QMP_ARG_INT:
        return "int";
    case QMP_ARG_BOOL:
        return "bool";
    case QMP_ARG_ARRAY:
        return "[any]";
    default:
        return "any";
    }
}

/* Every event strata sends and its data's members, as QEMU names them:
 * query-qmp-schema lists them from here (keep a new event's line here). */
static const struct {
    const char *name;
    QmpArg data[3];
} qmp_events[] = {
    { "SHUTDOWN", { { "guest", QMP_ARG_BOOL, false }, { "reason", QMP_ARG_STRING, false } } },
    { "POWERDOWN", { { .name = NULL } } },
    { "RESET", { { "guest", QMP_ARG_BOOL, false }, { "reason", QMP_ARG_STRING, false } } },
    { "STOP", { { .name = NULL } } },
    { "RESUME", { { .name = NULL } } },
    { "MIGRATION", { { "status", QMP_ARG_STRING, false } } },
    { "MIGRATION_PASS", { { "pass", QMP_ARG_INT, false } } },
    { "BALLOON_CHANGE", { { "actual", QMP_ARG_INT, false } } },
};

/* An object type named name with members (NULL-name terminated), appended
 * to the schema a. */
static void schema_object(json_t *a, const char *name, const QmpArg *members)
{
    json_t *m = json_array();
    for (const QmpArg *g = members; g->name; g++) {
        json_t *e = json_pack("{s:s,s:s}", "name", g->name, "type", schema_type(g->type));
        if (e && g->optional)
            json_object_set_new(e, "default", json_null()); /* QEMU: optional */
        json_array_append_new(m, e);
    }
    json_array_append_new(a, json_pack("{s:s,s:s,s:o}", "name", name, "meta-type", "object",
                                       "members", m));
}

json_t *qmp_server_schema(const QmpServer *srv)
{
    json_t *a = json_array();
    /* the types the commands' arguments use: QEMU's built-ins, an array */
    json_array_append_new(a, json_pack("{s:s,s:s,s:s}", "name", "str", "meta-type", "builtin",
                                       "json-type", "string"));
    json_array_append_new(a, json_pack("{s:s,s:s,s:s}", "name", "int", "meta-type", "builtin",
                                       "json-type", "int"));
    json_array_append_new(a, json_pack("{s:s,s:s,s:s}", "name", "bool", "meta-type", "builtin",
                                       "json-type", "boolean"));
    json_array_append_new(a, json_pack("{s:s,s:s,s:s}", "name", "any", "meta-type", "builtin",
                                       "json-type", "value"));
    json_array_append_new(a, json_pack("{s:s,s:s,s:s}", "name", "[any]", "meta-type", "array",
                                       "element-type", "any"));
    json_array_append_new(a, json_pack("{s:s,s:s,s:[]}", "name", "q_empty", "meta-type", "object",
                                       "members"));
    for (size_t i = 0; i < nr_served(srv); i++) {
        const QmpCommand *cmd = served(srv, i);
        char arg_type[160] = "q_empty";
        if (cmd->args && cmd->args->name) {
            snprintf(arg_type, sizeof(arg_type), "q_obj_%s-arg", cmd->name);
            schema_object(a, arg_type, cmd->args);
        }
        json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:s}", "name", cmd->name, "meta-type",
                                           "command", "arg-type", arg_type, "ret-type", "any"));
    }
    for (size_t i = 0; i < sizeof(qmp_events) / sizeof(qmp_events[0]); i++) {
        char arg_type[160] = "q_empty";
        if (qmp_events[i].data[0].name) {
            snprintf(arg_type, sizeof(arg_type), "q_obj_%s-arg", qmp_events[i].name);
            schema_object(a, arg_type, qmp_events[i].data);
        }
        json_array_append_new(a, json_pack("{s:s,s:s,s:s}", "name", qmp_events[i].name, "meta-type",
                                           "event", "arg-type", arg_type));
    }
    return a;
}

/* ---- requests ------------------------------------------------------------ */

static const char *type_name(QmpArgType t)
{
    switch (t) {
    case QMP_ARG_STRING:
        return "string";
    case QMP_ARG_INT:
        return "int";
    case QMP_ARG_BOOL:
        return "bool";
    case QMP_ARG_OBJECT:
        return "object";
    case QMP_ARG_ARRAY:
        return "array";
    default:
        return "any";
    }
}

static bool type_ok(QmpArgType t, json_t *v)
{
    switch (t) {
    case QMP_ARG_STRING:
        return json_is_string(v);
    case QMP_ARG_INT:
        return json_is_integer(v);
    case QMP_ARG_BOOL:
        return json_is_boolean(v);
    case QMP_ARG_OBJECT:
        return json_is_object(v);
    case QMP_ARG_ARRAY:
        return json_is_array(v);
    default:
        return true;
    }
}

/* Checks args against the table; false with err set. */
static bool check_args(const QmpCommand *cmd, json_t *args, QmpError *err)
{
    const char *key;
    json_t *v;
    json_object_foreach(args, key, v)
    {
        const QmpArg *a = cmd->args;
        while (a && a->name && strcmp(a->name, key))
            a++;
        if (!a || !a->name) {
            qmp_error_set(err, "Parameter '%s' is unexpected", key);
            return false;
        }
        if (!type_ok(a->type, v)) {
            qmp_error_set(err, "Invalid parameter type for '%s', expected: %s", key,
                          type_name(a->type));
            return false;
        }
        if (a->type == QMP_ARG_STRING && strlen(json_string_value(v)) != json_string_length(v)) {
            qmp_error_set(err, "Parameter '%s' contains a NUL character", key);
            return false;
        }
    }
    for (const QmpArg *a = cmd->args; a && a->name; a++) {
        if (!a->optional && !json_object_get(args, a->name)) {
            qmp_error_set(err, "Parameter '%s' is missing", a->name);
            return false;
        }
    }
    return true;
}

static const QmpCommand *find_cmd(const QmpServer *srv, const char *name)
{
    for (size_t i = 0; i < nr_served(srv); i++)
        if (!strcmp(served(srv, i)->name, name))
            return served(srv, i);
    return NULL;
}

static void handle_request(QmpClient *c, json_t *req)
{
    if (!json_is_object(req)) {
        send_error(c, NULL, "GenericError", "QMP input must be a JSON object");
        return;
    }
    json_t *id = json_object_get(req, "id");
    const char *key;
    json_t *v;
    json_object_foreach(req, key, v)
    {
        if (strcmp(key, "execute") && strcmp(key, "arguments") && strcmp(key, "id")) {
            char d[160];
            snprintf(d, sizeof(d), "QMP input member '%.100s' is unexpected", key);
            send_error(c, id, "GenericError", d);
            return;
        }
    }
    json_t *exec = json_object_get(req, "execute");
    if (!exec) {
        send_error(c, id, "GenericError", "QMP input lacks member 'execute'");
        return;
    }
    if (!json_is_string(exec)) {
        send_error(c, id, "GenericError", "QMP input member 'execute' must be a string");
        return;
    }
    json_t *args = json_object_get(req, "arguments");
    if (args && !json_is_object(args)) {
        send_error(c, id, "GenericError", "QMP input member 'arguments' must be an object");
        return;
    }
    const char *name = json_string_value(exec);
    const QmpCommand *cmd = find_cmd(c->srv, name);
    if (!c->negotiated && cmd != builtin_caps) {
        send_error(c, id, "CommandNotFound",
                   "Expecting capabilities negotiation with 'qmp_capabilities'");
        return;
    }
    if (c->negotiated && cmd == builtin_caps) {
        send_error(c, id, "CommandNotFound",
                   "Capabilities negotiation is already complete, command ignored");
        return;
    }
    if (!cmd) {
        char d[200];
        snprintf(d, sizeof(d), "The command %.120s has not been found", name);
        send_error(c, id, "CommandNotFound", d);
        return;
    }
    json_t *empty = NULL;
    if (!args)
        args = empty = json_object();
    QmpError err = { "GenericError", "" };
    json_t *ret = NULL;
    if (check_args(cmd, args, &err))
        ret = cmd->fn(cmd->opaque ? cmd->opaque : c->srv->opaque, c, args, &err);
    json_decref(empty);
    if (ret)
        send_return(c, id, ret);
    else
        send_error(c, id, err.cls ? err.cls : "GenericError",
                   err.desc[0] ? err.desc : "command failed");
}

/* One JSON value's text: parsed and run. */
static void run_value(QmpClient *c, const char *text, size_t len)
{
    json_error_t je;
    json_t *req = json_loadb(text, len, JSON_DECODE_ANY, &je);
    if (!req) {
        char d[300];
        snprintf(d, sizeof(d), "JSON parse error, %s", je.text);
        send_error(c, NULL, "GenericError", d);
        return;
    }
    handle_request(c, req);
    json_decref(req);
}

/* Runs the complete requests in the input buffer, as far as back-pressure
 * lets it (qmp-stream.h finds where each ends), and drops what is done. */
static void client_process(QmpClient *c)
{
    while (!c->dead && !client_held(c)) {
        size_t s, e;
        const char *why;
        QmpScanResult r = qmp_scan(&c->scan, c->in, c->in_len, &s, &e, &why);
        if (r == QMP_SCAN_MORE)
            break;
        if (r == QMP_SCAN_ERROR)
            send_error(c, NULL, "GenericError", why);
        else
            run_value(c, c->in + s, e - s);
    }
    if (c->dead)
        return;
    size_t done = qmp_scan_done(&c->scan);
    if (done) {
        memmove(c->in, c->in + done, c->in_len - done);
        c->in_len -= done;
        qmp_scan_shift(&c->scan, done);
    }
    if (c->eof && !c->dead && !client_held(c)) {
        /* The peer is gone for writing: a last unterminated request still
         * gets its answer (or its error), then the connection ends once
         * the output is sent. */
        size_t s, e;
        if (qmp_scan_finish(&c->scan, c->in_len, &s, &e))
            run_value(c, c->in + s, e - s);
        if (!c->dead) {
            c->in_len = 0;
            qmp_scan_shift(&c->scan, c->scan.pos);
            if (!pending(c))
                client_close(c, NULL);
        }
    }
    if (!c->dead)
        qmp_buf_trim(&c->srv->pool, &c->in, &c->in_cap, QMP_IN_BASE, c->in_len);
}

/* The partial request in c's input cannot grow (the shared pool is in use):
 * it is refused with an error and the rest of its line discarded. */
static void refuse_line(QmpClient *c)
{
    char d[200];
    snprintf(d, sizeof(d),
             "QMP request refused after %zu bytes: the shared QMP buffer "
             "space is in use by other clients; try again later",
             c->in_len);
    c->in_len = 0;
    qmp_scan_skip_line(&c->scan);
    qmp_buf_trim(&c->srv->pool, &c->in, &c->in_cap, QMP_IN_BASE, 0);
    send_error(c, NULL, "GenericError", d);
}

static void client_read(QmpClient *c)
{
    for (int i = 0; i < READS_PER_EVENT && !c->dead && !c->eof; i++) {
        if (client_held(c))
            break;
        if (c->in_cap - c->in_len < READ_CHUNK) {
            /* only a partial request is left here: the complete ones ran */
            int r = qmp_buf_reserve(&c->srv->pool, &c->in, &c->in_cap, QMP_IN_BASE, QMP_IN_MAX,
                                    c->in_len + READ_CHUNK);
            if (r == -ENOMEM) {
                client_close(c, "out of memory");
                return;
            }
            if (r < 0) {
                refuse_line(c);
                continue;
            }
        }
        ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            client_close(c, errno == ECONNRESET ? NULL : strerror(errno));
            return;
        }
        if (n == 0)
            c->eof = true;
        else
            c->active_ms = qmp_now_ms();
        c->in_len += (size_t)n;
        client_process(c);
    }
    if (!c->dead)
        client_update_mask(c);
}

static void client_event(EvSource *src, uint32_t events)
{
    QmpClient *c = (QmpClient *)src;
    if (c->dead)
        return;
    if (events & EPOLLOUT) {
        if (!client_flush(c))
            return;
        if (!client_held(c))
            client_process(c); /* requests held back by back-pressure */
        if (c->dead)
            return;
        client_update_mask(c);
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        client_read(c);
    if (!c->dead && (events & EPOLLERR) && !(events & EPOLLIN))
        client_close(c, "socket error");
    if (!c->dead && (events & EPOLLHUP) && c->eof)
        client_close(c, NULL); /* hung up both ways: nothing can be sent */
}

static void client_close(QmpClient *c, const char *why)
{
    if (c->dead)
        return;
    QmpServer *srv = c->srv;
    if (why)
        fprintf(stderr, "strata: QMP client %u dropped: %s\n", c->id, why);
    c->dead = true;
    ev_del(srv->epfd, c->fd);
    close(c->fd);
    c->fd = -1;
    for (QmpClient **p = &srv->clients; *p; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            break;
        }
    }
    c->next = srv->dead;
    srv->dead = c;
    srv->nr_clients--;
}

static void client_free(QmpClient *c)
{
    qmp_buf_free(&c->srv->pool, &c->in, &c->in_cap, QMP_IN_BASE);
    qmp_buf_free(&c->srv->pool, &c->out, &c->out_cap, QMP_OUT_BASE);
    free(c);
}

void qmp_server_reap(QmpServer *srv)
{
    if (!srv)
        return;
    while (srv->dead) {
        QmpClient *c = srv->dead;
        srv->dead = c->next;
        client_free(c);
    }
}

/* ---- idle clients --------------------------------------------------------- */

/* Drops clients that sent nothing and read nothing for the idle timeout. */
static void server_tick(EvSource *src, uint32_t events)
{
    QmpServer *srv = (QmpServer *)((char *)src - offsetof(QmpServer, tick_src));
    uint64_t n;
    (void)!read(srv->timerfd, &n, sizeof(n));
    uint64_t now = qmp_now_ms();
    for (QmpClient *c = srv->clients, *next; c; c = next) {
        next = c->next;
        if (now - c->active_ms < srv->idle_ms)
            continue;
        char why[160];
        snprintf(why, sizeof(why), "idle for %llu ms (%s)",
                 (unsigned long long)(now - c->active_ms),
                 pending(c) ? "its output unread" : "nothing sent or read");
        client_notify(c, "QMP connection idle for too long: closed");
        client_close(c, why);
    }
}

/* Makes room for one more client by closing the one idle the longest, if
 * it has been idle QMP_EVICT_MIN_IDLE_MS or more; false if none was. */
static bool evict_idlest(QmpServer *srv)
{
    QmpClient *old = NULL;
    for (QmpClient *c = srv->clients; c; c = c->next) /* newest first: ties go to the oldest */
        if (!old || c->active_ms <= old->active_ms)
            old = c;
    uint64_t now = qmp_now_ms();
    if (!old || now - old->active_ms < QMP_EVICT_MIN_IDLE_MS)
        return false;
    char why[160];
    snprintf(why, sizeof(why), "evicted for a new client (all %u slots taken; idle for %llu ms)",
             QMP_MAX_CLIENTS, (unsigned long long)(now - old->active_ms));
    client_notify(old, "QMP connection closed for a new client: all slots taken, this one idle");
    client_close(old, why);
    return true;
}

/* The idle timeout: STRATA_QMP_IDLE_TIMEOUT_MS (milliseconds, 0 = never)
 * or QMP_IDLE_TIMEOUT_MS; false if the variable is not a number. */
static bool idle_timeout(uint64_t *ms)
{
    const char *e = getenv("STRATA_QMP_IDLE_TIMEOUT_MS");
    *ms = QMP_IDLE_TIMEOUT_MS;
    if (!e || !*e)
        return true;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(e, &end, 10);
    if (errno || *end || *e < '0' || *e > '9')
        return false;
    *ms = v;
    return true;
}

/* Ticks a tenth of the idle timeout (10 ms .. 5 s), so a client is dropped
 * at most 10% late; no timer when clients never time out. */
static int start_ticks(QmpServer *srv)
{
    if (!srv->idle_ms)
        return 0;
    uint64_t tick = srv->idle_ms / 10;
    tick = tick < 10 ? 10 : tick > 5000 ? 5000 : tick;
    srv->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (srv->timerfd < 0)
        return -errno;
    struct timespec t = { (time_t)(tick / 1000), (long)(tick % 1000) * 1000000L };
    struct itimerspec its = { t, t };
    if (timerfd_settime(srv->timerfd, 0, &its, NULL) < 0)
        return -errno;
    srv->tick_src.handler = server_tick;
    return ev_add(srv->epfd, srv->timerfd, EPOLLIN, &srv->tick_src);
}

/* ---- listening ------------------------------------------------------------- */

static void server_accept(EvSource *src, uint32_t events)
{
    QmpServer *srv = (QmpServer *)src;
    for (int i = 0; i < 64; i++) {
        int fd = accept4(srv->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                fprintf(stderr, "strata: QMP accept: %s\n", strerror(errno));
            return;
        }
        if (srv->nr_clients >= QMP_MAX_CLIENTS && !evict_idlest(srv)) {
            static const char msg[] =
                "{\"error\": {\"class\": \"GenericError\", \"desc\": \"too many QMP clients\"}}\r\n";
            (void)!send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            close(fd);
            continue;
        }
        QmpClient *c = calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            return;
        }
        c->src.handler = client_event;
        c->srv = srv;
        c->fd = fd;
        c->id = ++srv->next_id;
        c->mask = EPOLLIN;
        c->active_ms = qmp_now_ms();
        qmp_scan_init(&c->scan, QMP_MAX_REQUEST, QMP_MAX_DEPTH, QMP_MAX_TOKENS);
        if (ev_add(srv->epfd, fd, c->mask, &c->src) < 0) {
            close(fd);
            free(c);
            continue;
        }
        c->next = srv->clients;
        srv->clients = c;
        srv->nr_clients++;
        json_t *greet = json_pack("{s:{s:o,s:[]}}", "QMP", "version", qmp_version_json(),
                                  "capabilities");
        if (greet)
            client_send(c, greet, false);
        json_decref(greet);
    }
}

QmpServer *qmp_server_new(const char *path, int epfd, const QmpCommand *cmds, size_t ncmds,
                          void *opaque, char *err, size_t errlen)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "--api-socket %s: path too long", path);
        return NULL;
    }
    /* NOLINTNEXTLINE(clang-analyzer-security.insecureAPI.strcpy): length checked above */
    strcpy(sa.sun_path, path);
    uint64_t idle_ms;
    if (!idle_timeout(&idle_ms)) {
        snprintf(err, errlen, "STRATA_QMP_IDLE_TIMEOUT_MS=%s: not a number of milliseconds",
                 getenv("STRATA_QMP_IDLE_TIMEOUT_MS"));
        return NULL;
    }
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen, "--api-socket %s: exists and is not a socket", path);
            return NULL;
        }
        /* A socket left behind: replace it unless something answers on it. */
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            close(probe);
            snprintf(err, errlen, "--api-socket %s: another process is listening there", path);
            return NULL;
        }
        if (probe >= 0)
            close(probe);
        unlink(path);
    }
    QmpServer *srv = calloc(1, sizeof(*srv));
    if (!srv) {
        snprintf(err, errlen, "--api-socket %s: out of memory", path);
        return NULL;
    }
    srv->src.handler = server_accept;
    srv->epfd = epfd;
    srv->cmds = cmds;
    srv->ncmds = ncmds;
    srv->opaque = opaque;
    srv->idle_ms = idle_ms;
    srv->pool.size = QMP_POOL;
    srv->timerfd = -1;
    srv->path = strdup(path);
    srv->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (!srv->path || srv->fd < 0 || unix_bind_listen(srv->fd, &sa, 128) < 0 ||
        ev_add(epfd, srv->fd, EPOLLIN, &srv->src) < 0) {
        snprintf(err, errlen, "--api-socket %s: %s", path, strerror(errno));
        if (srv->fd >= 0)
            close(srv->fd);
        free(srv->path);
        free(srv);
        return NULL;
    }
    srv->accepting = true;
    int r = start_ticks(srv);
    if (r < 0) {
        snprintf(err, errlen, "--api-socket %s: idle timer: %s", path, strerror(-r));
        qmp_server_free(srv);
        return NULL;
    }
    return srv;
}

int qmp_server_accepting(QmpServer *srv, bool on)
{
    if (!srv || srv->accepting == on)
        return 0;
    int r = on ? ev_add(srv->epfd, srv->fd, EPOLLIN, &srv->src) : ev_del(srv->epfd, srv->fd);
    if (r == 0)
        srv->accepting = on;
    return r;
}

void qmp_server_free(QmpServer *srv)
{
    if (!srv)
        return;
    while (srv->clients) {
        QmpClient *c = srv->clients;
        if (pending(c))
            client_flush(c); /* one last non-blocking try */
        if (!c->dead)
            client_close(c, NULL);
    }
    qmp_server_reap(srv);
    if (srv->timerfd >= 0) {
        ev_del(srv->epfd, srv->timerfd);
        close(srv->timerfd);
    }
    if (srv->accepting)
        ev_del(srv->epfd, srv->fd);
    close(srv->fd);
    unlink(srv->path);
    free(srv->path);
    free(srv);
}

void qmp_server_event(QmpServer *srv, const char *name, json_t *data)
{
    if (!srv) {
        json_decref(data);
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    json_t *m = json_pack("{s:s,s:o,s:{s:I,s:I}}", "event", name, "data",
                          data ? data : json_object(), "timestamp", "seconds",
                          (json_int_t)ts.tv_sec, "microseconds", (json_int_t)(ts.tv_nsec / 1000));
    if (!m)
        return;
    /* client_send may close (unlink) a client: walk a snapshot of next. */
    for (QmpClient *c = srv->clients, *next; c; c = next) {
        next = c->next;
        if (c->negotiated)
            client_send(c, m, false); /* over its budget: dropped, logged */
    }
    json_decref(m);
}

json_t *qmp_version_json(void)
{
    int v[3];
    strata_version_numbers(v);
    return json_pack("{s:{s:i,s:i,s:i},s:s}", "qemu", "micro", v[2], "minor", v[1], "major", v[0],
                     "package", "strata");
}

unsigned qmp_server_nr_clients(const QmpServer *srv)
{
    return srv ? srv->nr_clients : 0;
}
