/* SPDX-License-Identifier: MIT */
/* `strata ctl`: a small QMP client for the control socket. */
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "vmm/control/ctl.h"
#include "vmm/text.h"

#define CTL_MAX_REPLY (256u << 20)

static const char ctl_usage[] =
    "Usage: strata ctl --api-socket PATH COMMAND [ARGS]\n"
    "Commands:\n"
    "  mtree [-f] [-D]        print the memory tree (info mtree, QEMU's format)\n"
    "  status                 print the run state (running, paused, inmigrate, ...)\n"
    "  stats                  print the counters (QMP x-query-stats, docs/stats.md)\n"
    "                         pretty-printed\n"
    "  pause | resume         stop / continue the vCPUs (QMP stop / cont)\n"
    "  reset                  reset the machine (QMP system_reset)\n"
    "  powerdown              press the ACPI power button (QMP system_powerdown)\n"
    "  quit                   end the VM and strata (QMP quit)\n"
    "  hmp 'LINE'             run a human monitor command, print its output\n"
    "  qmp NAME ['{JSON}']    run any QMP command with JSON arguments, print the\n"
    "                         reply pretty-printed\n"
    "  migrate URI [--downtime-limit MS] [--max-bandwidth BYTES_PER_S]\n"
    "                         live-migrate to a `strata run --incoming URI`\n"
    "                         (tcp:HOST:PORT or unix:PATH) with a progress line\n"
    "                         (round, sent/left, rate, expected downtime) and a\n"
    "                         summary; exit 0 only if it completed, 3 if the\n"
    "                         handover went unconfirmed (the source holds the guest\n"
    "                         paused: check the destination, `cont` the source only\n"
    "                         if it does not run the guest)\n"
    "  migrate-incoming URI   on a `strata run --incoming defer` destination: listen\n"
    "                         on URI (tcp:HOST:PORT, unix:PATH) for the source's\n"
    "                         migrate, or restore file:PATH (QMP migrate-incoming)\n"
    "  snapshot PATH [--live] [--incremental]\n"
    "                         save the VM to the file PATH (QMP migrate file:PATH;\n"
    "                         docs/snapshot.md) with the same progress line:\n"
    "                         paused first and left paused (`resume` goes on), or\n"
    "                         with --live saved while it runs, then a short pause\n"
    "                         as a migration's; restore with `strata run <same\n"
    "                         options> --restore PATH`; --incremental keeps the\n"
    "                         dirty log on after it, so the next save to PATH\n"
    "                         writes only what changed since\n"
    "Exit status: 0 on success, 1 with the error's description otherwise.\n";

typedef struct Conn {
    int fd;
    const char *path;
    char *buf;
    size_t len, cap;
} Conn;

/* Next line from the server as JSON, or NULL after printing why. */
static json_t *read_msg(Conn *c)
{
    for (;;) {
        char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
        if (nl) {
            size_t n = (size_t)(nl - c->buf) + 1;
            json_error_t je;
            json_t *m = json_loadb(c->buf, n, 0, &je);
            memmove(c->buf, c->buf + n, c->len - n);
            c->len -= n;
            if (!m) {
                fprintf(stderr, "strata ctl: %s: bad reply: %s\n", c->path, je.text);
                return NULL;
            }
            return m;
        }
        if (c->cap - c->len < 65536) {
            if (c->cap >= CTL_MAX_REPLY) {
                fprintf(stderr, "strata ctl: %s: reply too large\n", c->path);
                return NULL;
            }
            size_t cap = c->cap ? c->cap * 2 : 131072;
            char *nb = realloc(c->buf, cap);
            if (!nb) {
                fprintf(stderr, "strata ctl: out of memory\n");
                return NULL;
            }
            c->buf = nb;
            c->cap = cap;
        }
        ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            fprintf(stderr, "strata ctl: %s: %s\n", c->path,
                    r == 0            ? "connection closed before the reply"
                    : errno == EAGAIN ? "no reply within 60 s"
                                      : strerror(errno));
            return NULL;
        }
        c->len += (size_t)r;
    }
}

/* Sends a request and returns its reply (events skipped), or NULL. */
static json_t *call(Conn *c, const char *name, json_t *args, json_int_t id)
{
    json_t *req = json_pack("{s:s,s:I}", "execute", name, "id", id);
    if (args)
        json_object_set(req, "arguments", args);
    char *s = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (!s)
        return NULL;
    size_t len = strlen(s), off = 0;
    s[len] = '\n'; /* json_dumps' NUL becomes the line end */
    while (off < len + 1) {
        ssize_t w = send(c->fd, s + off, len + 1 - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            fprintf(stderr, "strata ctl: %s: %s\n", c->path, strerror(errno));
            free(s);
            return NULL;
        }
        off += (size_t)w;
    }
    free(s);
    for (;;) {
        json_t *m = read_msg(c);
        if (!m)
            return NULL;
        json_t *mid = json_object_get(m, "id");
        if (json_object_get(m, "event") || !json_is_integer(mid) || json_integer_value(mid) != id) {
            json_decref(m);
            continue;
        }
        return m;
    }
}

/* Prints the error of a reply; returns 1. */
static int report_error(json_t *reply)
{
    json_t *e = json_object_get(reply, "error");
    const char *desc = json_string_value(json_object_get(e, "desc"));
    char safe[2048]; /* desc may quote a client, a migration peer, a guest */
    fprintf(stderr, "strata ctl: %s\n",
            desc ? text_escape(safe, sizeof(safe), desc, strlen(desc)) : "unexpected reply");
    return 1;
}

static double mib(json_int_t v)
{
    return (double)v / (1024.0 * 1024.0);
}

/* `strata ctl migrate`: start it, show progress until it ends, summarise. */
/* migrate's arguments: the URI and migrate-set-parameters' object in
 * *params; 0, or -1 after a message. */
static int migrate_args(int nargs, char *const *args, const char **uri, json_t *params)
{
    for (int k = 0; k < nargs; k++) {
        const char *key = !strcmp(args[k], "--downtime-limit")  ? "downtime-limit"
                          : !strcmp(args[k], "--max-bandwidth") ? "max-bandwidth"
                                                                : NULL;
        if (key) {
            char *end = NULL;
            long long v = k + 1 < nargs ? strtoll(args[k + 1], &end, 10) : -1;
            if (k + 1 >= nargs || !end || *end || v < 0) {
                fprintf(stderr, "strata ctl: migrate %s: expected a number\n", args[k]);
                return -1;
            }
            json_object_set_new(params, key, json_integer(v));
            k++;
        } else if (!*uri && strncmp(args[k], "--", 2)) {
            *uri = args[k];
        } else {
            fprintf(stderr, "strata ctl: migrate: unexpected '%s'\n", args[k]);
            return -1;
        }
    }
    if (!*uri) {
        fprintf(stderr, "strata ctl: migrate: URI missing (tcp:HOST:PORT or unix:PATH)\n");
        return -1;
    }
    return 0;
}

/* The summary of a migration that ended (query-migrate's return q): the
 * exit status (0 completed, 3 handover unconfirmed, else 1). */
static int migrate_outcome(json_t *q, const char *st, const char *snapshot)
{
    json_t *ram = json_object_get(q, "ram");
    json_int_t sent = json_integer_value(json_object_get(ram, "transferred"));
    json_int_t rounds = json_integer_value(json_object_get(q, "x-rounds"));
    if (st && !strcmp(st, "completed") && snapshot) {
        printf("snapshot saved to %s in %lld ms: downtime %lld ms, %.1f MiB of RAM written in "
               "%lld round%s (%lld zero pages left as holes, %lld written)\n",
               snapshot, (long long)json_integer_value(json_object_get(q, "total-time")),
               (long long)json_integer_value(json_object_get(q, "downtime")), mib(sent),
               (long long)rounds, rounds == 1 ? "" : "s",
               (long long)json_integer_value(json_object_get(ram, "duplicate")),
               (long long)json_integer_value(json_object_get(ram, "normal")));
        return 0;
    }
    if (st && !strcmp(st, "completed")) {
        json_int_t tt = json_integer_value(json_object_get(q, "total-time"));
        printf("migration completed in %lld ms: downtime %lld ms, %.1f MiB sent in %lld "
               "round%s (%lld zero pages, %lld normal)%s, %.1f MiB/s on average\n",
               (long long)tt, (long long)json_integer_value(json_object_get(q, "downtime")),
               mib(sent), (long long)rounds, rounds == 1 ? "" : "s",
               (long long)json_integer_value(json_object_get(ram, "duplicate")),
               (long long)json_integer_value(json_object_get(ram, "normal")),
               json_is_true(json_object_get(q, "x-forced-final-round"))
                   ? ", final round forced (the guest dirtied faster than the link)"
                   : "",
               tt ? mib(sent) * 1000.0 / (double)tt : 0.0);
        return 0;
    }
    const char *desc = json_string_value(json_object_get(q, "error-desc"));
    const char *owner = json_string_value(json_object_get(q, "x-guest-owner"));
    bool held = owner && !strcmp(owner, "unknown");
    char safe[2048], state[64]; /* may quote the destination's refusal */
    fprintf(stderr, "strata ctl: %s %s%s%s%s\n", snapshot ? "snapshot" : "migration",
            st ? text_escape(state, sizeof(state), st, strlen(st)) : "ended", desc ? ": " : "",
            desc ? text_escape(safe, sizeof(safe), desc, strlen(desc)) : "",
            held ? "" : "; the VM keeps running on the source");
    return held ? 3 : 1; /* held: the operator must look at both sides */
}

/* One progress line from a running migration's query-migrate return q. */
static void migrate_progress(json_t *q, const char *st, bool tty, char *last, size_t lastlen)
{
    json_t *ram = json_object_get(q, "ram");
    json_int_t sent = json_integer_value(json_object_get(ram, "transferred"));
    json_int_t left = json_integer_value(json_object_get(ram, "remaining"));
    json_int_t rounds = json_integer_value(json_object_get(q, "x-rounds"));
    double mbps = json_real_value(json_object_get(ram, "mbps"));
    double pct = sent + left > 0 ? 100.0 * (double)sent / (double)(sent + left) : 0;
    if (!strcmp(st, "device"))
        pct = 99.9;
    char bar[21];
    int full = (int)(pct / 5);
    for (int k = 0; k < 20; k++)
        bar[k] = k < full ? '#' : '.';
    bar[20] = 0;
    char line[256];
    snprintf(line, sizeof(line),
             "[%s] %-6s round %lld  sent %.1f MiB  left %.1f MiB  "
             "%.1f MiB/s  expected downtime %lld ms",
             bar, st, (long long)rounds + 1, mib(sent), mib(left), mbps / 8.388608,
             (long long)json_integer_value(json_object_get(q, "expected-downtime")));
    if (tty) {
        printf("\r%s\033[K", line);
        fflush(stdout);
    } else if (strcmp(line, last)) {
        puts(line);
    }
    snprintf(last, lastlen, "%s", line);
}

static int run_migration(Conn *c, const char *uri, json_t *params, const char *snapshot);

static int ctl_migrate(Conn *c, int nargs, char *const *args)
{
    const char *uri = NULL;
    json_t *params = json_object();
    if (migrate_args(nargs, args, &uri, params) < 0) {
        json_decref(params);
        return 1;
    }
    return run_migration(c, uri, params, NULL);
}

/* `strata ctl snapshot PATH [--live]`. */
static int ctl_snapshot(Conn *c, int nargs, char *const *args)
{
    const char *path = NULL;
    bool live = false, incremental = false;
    for (int k = 0; k < nargs; k++) {
        if (!strcmp(args[k], "--live"))
            live = true;
        else if (!strcmp(args[k], "--incremental"))
            incremental = true;
        else if (!path && strncmp(args[k], "--", 2))
            path = args[k];
        else {
            fprintf(stderr, "strata ctl: snapshot: unexpected '%s'\n", args[k]);
            return 1;
        }
    }
    if (!path || !*path) {
        fprintf(stderr, "strata ctl: snapshot: PATH missing\n");
        return 1;
    }
    /* strata opens it: a relative path would be relative to its directory */
    char cwd[4096], uri[8300];
    if (path[0] != '/' && !getcwd(cwd, sizeof(cwd))) {
        fprintf(stderr, "strata ctl: snapshot: getcwd: %s\n", strerror(errno));
        return 1;
    }
    snprintf(uri, sizeof(uri), "file:%s%s%s", path[0] == '/' ? "" : cwd, path[0] == '/' ? "" : "/",
             path);
    if (!live) {
        json_t *r = call(c, "stop", NULL, 9);
        if (!r || json_object_get(r, "error"))
            return r ? report_error(r) : 1;
        json_decref(r);
    }
    json_t *params = json_pack("{s:b}", "x-incremental-snapshot", incremental);
    int status = run_migration(c, uri, params, uri + 5);
    if (!live)
        fprintf(stderr, "strata ctl: the VM is paused; `strata ctl --api-socket ... resume` "
                        "goes on\n");
    return status;
}

/* Runs a migration to uri with params (stolen): progress, outcome. */
static int run_migration(Conn *c, const char *uri, json_t *params, const char *snapshot)
{
    json_int_t id = 10;
    json_t *r;
    if (json_object_size(params)) {
        r = call(c, "migrate-set-parameters", params, id++);
        if (!r || json_object_get(r, "error")) {
            json_decref(params);
            return r ? report_error(r) : 1;
        }
        json_decref(r);
    }
    json_decref(params);
    json_t *a = json_pack("{s:s}", "uri", uri);
    r = call(c, "migrate", a, id++);
    json_decref(a);
    if (!r || json_object_get(r, "error"))
        return r ? report_error(r) : 1;
    json_decref(r);
    bool tty = isatty(STDOUT_FILENO);
    char last[256] = "";
    for (;;) {
        r = call(c, "query-migrate", NULL, id++);
        if (!r || json_object_get(r, "error"))
            return r ? report_error(r) : 1;
        json_t *q = json_object_get(r, "return");
        const char *st = json_string_value(json_object_get(q, "status"));
        if (!st || !strcmp(st, "completed") || !strcmp(st, "failed") || !strcmp(st, "cancelled")) {
            if (tty)
                putchar('\n');
            int status = migrate_outcome(q, st, snapshot);
            json_decref(r);
            return status;
        }
        migrate_progress(q, st, tty, last, sizeof(last));
        json_decref(r);
        struct timespec ts = { 0, 200000000 };
        nanosleep(&ts, NULL);
    }
}

/* strata ctl's command, as the QMP request it becomes. */
typedef struct CtlRequest {
    const char *qname;
    json_t *qargs;
    enum { OUT_NONE, OUT_STRING, OUT_STATUS, OUT_PRETTY } out;
    char line[256]; /* an HMP command line built here */
} CtlRequest;

/* The options before COMMAND: the index of COMMAND, or -1 with *status
 * the exit status (--help: 0). */
static int parse_options(int argc, char *const argv[], const char **path, int *status)
{
    int i = 0;
    *status = 1;
    for (; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(ctl_usage, stdout);
            *status = 0;
            return -1;
        }
        if (!strcmp(argv[i], "--api-socket") && i + 1 < argc) {
            *path = argv[++i];
        } else if (!strncmp(argv[i], "--api-socket=", 13)) {
            *path = argv[i] + 13;
        } else if (!strncmp(argv[i], "--", 2)) {
            fprintf(stderr, "strata ctl: unknown option '%s'\n", argv[i]);
            return -1;
        } else {
            break;
        }
    }
    if (!*path) {
        fprintf(stderr, "strata ctl: --api-socket PATH is required\n%s", ctl_usage);
        return -1;
    }
    if (i >= argc) {
        fprintf(stderr, "strata ctl: missing COMMAND\n%s", ctl_usage);
        return -1;
    }
    return i;
}

/* The commands without arguments: their QMP names. */
static const char *simple_command(const char *cmd)
{
    static const char *const map[][2] = {
        { "status", "query-status" }, { "stats", "x-query-stats" },
        { "pause", "stop" },          { "resume", "cont" },
        { "reset", "system_reset" },  { "powerdown", "system_powerdown" },
        { "quit", "quit" },
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (!strcmp(cmd, map[i][0]))
            return map[i][1];
    return NULL;
}

/* Maps COMMAND ARGS to a QMP request in *r: 0, or -1 after a message. */
static int map_command(const char *cmd, int nargs, char *const *args, CtlRequest *r)
{
    if (!strcmp(cmd, "mtree")) {
        snprintf(r->line, sizeof(r->line), "info mtree");
        for (int k = 0; k < nargs; k++) {
            if (strcmp(args[k], "-f") && strcmp(args[k], "-D")) {
                fprintf(stderr, "strata ctl: mtree: unknown option '%s' (use -f, -D)\n", args[k]);
                return -1;
            }
            strncat(r->line, " ", sizeof(r->line) - strlen(r->line) - 1);
            strncat(r->line, args[k], sizeof(r->line) - strlen(r->line) - 1);
        }
        r->qname = "human-monitor-command";
        r->qargs = json_pack("{s:s}", "command-line", r->line);
        r->out = OUT_STRING;
    } else if (!strcmp(cmd, "hmp") && nargs == 1) {
        r->qname = "human-monitor-command";
        r->qargs = json_pack("{s:s}", "command-line", args[0]);
        r->out = OUT_STRING;
    } else if (!strcmp(cmd, "qmp") && (nargs == 1 || nargs == 2)) {
        r->qname = args[0];
        r->out = OUT_PRETTY;
        if (nargs == 2) {
            json_error_t je;
            r->qargs = json_loads(args[1], 0, &je);
            if (!json_is_object(r->qargs)) {
                fprintf(stderr, "strata ctl: qmp %s '%s': arguments must be a JSON object%s%s\n",
                        r->qname, args[1], r->qargs ? "" : ": ", r->qargs ? "" : je.text);
                return -1;
            }
        }
    } else if (!strcmp(cmd, "migrate-incoming") && nargs == 1) {
        r->qname = "migrate-incoming";
        r->qargs = json_pack("{s:s}", "uri", args[0]);
        r->out = OUT_NONE;
    } else if (!strcmp(cmd, "migrate") || !strcmp(cmd, "snapshot")) {
        r->qname = "migrate"; /* driven by ctl_migrate / ctl_snapshot */
    } else if (nargs == 0) {
        r->qname = simple_command(cmd);
        r->out = !strcmp(cmd, "status")  ? OUT_STATUS
                 : !strcmp(cmd, "stats") ? OUT_PRETTY
                                         : OUT_NONE;
    }
    if (!r->qname) {
        fprintf(stderr, "strata ctl: unknown command or wrong arguments: '%s'\n%s", cmd, ctl_usage);
        return -1;
    }
    return 0;
}

/* Connects to the control socket at path: 0, or -1 after a message. */
static int connect_api(Conn *c, const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "strata ctl: --api-socket %s: path too long\n", path);
        return -1;
    }
    /* NOLINTNEXTLINE(clang-analyzer-security.insecureAPI.strcpy): length checked above */
    strcpy(sa.sun_path, path);
    c->path = path;
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        fprintf(stderr, "strata ctl: --api-socket %s: %s\n", path, strerror(errno));
        if (c->fd >= 0)
            close(c->fd);
        c->fd = -1;
        return -1;
    }
    struct timeval tv = { .tv_sec = 60 };
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return 0;
}

/* Prints a reply as the request asked: the exit status. */
static int print_reply(json_t *reply, const CtlRequest *r)
{
    if (r->out == OUT_PRETTY) {
        json_object_del(reply, "id");
        char *s = json_dumps(reply, JSON_INDENT(2));
        if (s)
            puts(s);
        free(s);
        return json_object_get(reply, "error") ? report_error(reply) : 0;
    }
    if (json_object_get(reply, "error"))
        return report_error(reply);
    json_t *ret = json_object_get(reply, "return");
    if (r->out == OUT_STRING && json_is_string(ret)) {
        /* the monitor's "\r\n" line ends, as a terminal's or a file's "\n" */
        for (const char *p = json_string_value(ret); *p; p++)
            if (*p != '\r' || p[1] != '\n')
                putchar(*p);
    } else if (r->out == OUT_STATUS)
        printf("%s\n", json_string_value(json_object_get(ret, "status")));
    return 0;
}

int strata_ctl(int argc, char *const argv[])
{
    const char *path = NULL;
    int status;
    int i = parse_options(argc, argv, &path, &status);
    if (i < 0)
        return status;
    const char *cmd = argv[i++];
    int nargs = argc - i;
    char *const *args = argv + i;
    CtlRequest r = { 0 };
    Conn c = { .fd = -1 };
    json_t *greet = NULL, *neg = NULL, *reply = NULL;
    status = 1;
    if (map_command(cmd, nargs, args, &r) < 0 || connect_api(&c, path) < 0)
        goto out;
    greet = read_msg(&c);
    if (!greet)
        goto out;
    if (!json_object_get(greet, "QMP")) {
        fprintf(stderr, "strata ctl: %s: not a QMP server\n", path);
        goto out;
    }
    neg = call(&c, "qmp_capabilities", NULL, 1);
    if (!neg)
        goto out;
    if (json_object_get(neg, "error"))
        status = report_error(neg);
    else if (!strcmp(cmd, "migrate"))
        status = ctl_migrate(&c, nargs, args);
    else if (!strcmp(cmd, "snapshot"))
        status = ctl_snapshot(&c, nargs, args);
    else if ((reply = call(&c, r.qname, r.qargs, 2)))
        status = print_reply(reply, &r);
out:
    json_decref(greet);
    json_decref(neg);
    json_decref(reply);
    json_decref(r.qargs);
    free(c.buf);
    if (c.fd >= 0)
        close(c.fd);
    return status;
}
