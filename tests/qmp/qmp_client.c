/* SPDX-License-Identifier: MIT */
/* A blocking QMP client for tests (see qmp_client.h). */
#include "qmp_client.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

QClient *qc_connect(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return NULL;
    }
    QClient *c = calloc(1, sizeof(*c));
    c->fd = fd;
    c->events = json_array();
    c->next_id = 1;
    return c;
}

static void die(const char *what, json_t *m)
{
    char *s = m ? json_dumps(m, 0) : NULL;
    fprintf(stderr, "qmp client: %s: %s\n", what, s ? s : "(nothing)");
    free(s);
    exit(1);
}

QClient *qc_open(const char *path)
{
    QClient *c = qc_connect(path);
    if (!c) {
        fprintf(stderr, "qmp client: connect %s: %s\n", path, strerror(errno));
        exit(1);
    }
    json_t *g = qc_read(c);
    if (!g || !json_object_get(g, "QMP"))
        die("no greeting", g);
    json_decref(g);
    json_t *r = qc_cmd(c, "qmp_capabilities", NULL);
    if (!r || !json_object_get(r, "return"))
        die("negotiation failed", r);
    json_decref(r);
    return c;
}

void qc_close(QClient *c)
{
    if (!c)
        return;
    close(c->fd);
    json_decref(c->events);
    free(c->buf);
    free(c);
}

bool qc_send_raw(QClient *c, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

json_t *qc_read(QClient *c)
{
    for (;;) {
        char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
        if (nl) {
            size_t n = (size_t)(nl - c->buf) + 1;
            json_error_t je;
            json_t *m = json_loadb(c->buf, n, 0, &je);
            if (!m) {
                fprintf(stderr, "qmp client: unparsable line from strata: %.*s\n", (int)n, c->buf);
                exit(1);
            }
            memmove(c->buf, c->buf + n, c->len - n);
            c->len -= n;
            return m;
        }
        if (c->cap - c->len < 65536) {
            c->cap = c->cap ? c->cap * 2 : 131072;
            c->buf = realloc(c->buf, c->cap);
        }
        ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            fprintf(stderr, "qmp client: no message from strata within the timeout\n");
        if (r <= 0)
            return NULL;
        c->len += (size_t)r;
    }
}

json_t *qc_cmd(QClient *c, const char *name, json_t *args)
{
    long long id = c->next_id++;
    json_t *req = json_pack("{s:s,s:I}", "execute", name, "id", (json_int_t)id);
    if (args)
        json_object_set(req, "arguments", args);
    char *s = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    size_t len = strlen(s);
    s[len] = '\n';
    bool ok = qc_send_raw(c, s, len + 1);
    free(s);
    if (!ok)
        return NULL;
    for (;;) {
        json_t *m = qc_read(c);
        if (!m)
            return NULL;
        if (json_object_get(m, "event")) {
            json_array_append_new(c->events, m);
            continue;
        }
        json_t *mid = json_object_get(m, "id");
        if (json_is_integer(mid) && json_integer_value(mid) == id)
            return m;
        json_decref(m); /* a reply to a raw request sent earlier */
    }
}

json_t *qc_cmdf(QClient *c, const char *name, const char *args_json)
{
    json_t *a = args_json ? json_loads(args_json, 0, NULL) : NULL;
    if (args_json && !a) {
        fprintf(stderr, "qmp client: bad test arguments %s\n", args_json);
        exit(1);
    }
    json_t *r = qc_cmd(c, name, a);
    json_decref(a);
    return r;
}

json_t *qc_wait_event(QClient *c, const char *name)
{
    for (;;) {
        size_t i;
        json_t *e;
        json_array_foreach(c->events, i, e)
        {
            if (!strcmp(json_string_value(json_object_get(e, "event")), name)) {
                json_incref(e);
                json_array_remove(c->events, i);
                return e;
            }
        }
        json_t *m = qc_read(c);
        if (!m)
            return NULL;
        if (json_object_get(m, "event"))
            json_array_append_new(c->events, m);
        else
            json_decref(m);
    }
}

size_t qc_count_events(QClient *c, const char *name)
{
    size_t i, n = 0;
    json_t *e;
    json_array_foreach(c->events, i, e)
        n += !name || !strcmp(json_string_value(json_object_get(e, "event")), name);
    return n;
}

bool qc_readable(QClient *c)
{
    if (c->len)
        return true;
    struct pollfd p = { .fd = c->fd, .events = POLLIN };
    return poll(&p, 1, 0) > 0;
}

void qc_set_timeout(QClient *c, unsigned ms)
{
    struct timeval tv = { ms / 1000, (long)(ms % 1000) * 1000 };
    if (setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
        fprintf(stderr, "qmp client: SO_RCVTIMEO: %s\n", strerror(errno));
}
