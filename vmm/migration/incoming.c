/* SPDX-License-Identifier: MIT */
/*
 * The destination's incoming side (`strata run ... --incoming URI`, or
 * `--incoming defer` and QMP migrate-incoming): listen from the main loop,
 * take one connection, and load the stream (mig_load_fd, destination.c) or
 * restore a snapshot (mig_restore_fd) on a thread of its own under the
 * migration role's seccomp filter, while the main loop keeps serving QMP.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vmm/log.h"
#include "vmm/migration/internal.h"
#include "vmm/text.h"
#include "vmm/migration/uri.h"

/* Closes the listening socket (and removes a unix one's file). */
static void stop_listening(Migration *g)
{
    const MigHost *h = g->host;
    if (g->listen_fd < 0)
        return;
    ev_del(h->epfd, g->listen_fd);
    close(g->listen_fd);
    g->listen_fd = -1;
    if (g->listen_path[0]) {
        if (h->crash_unlink)
            h->crash_unlink(h->opaque, g->listen_path, false);
        unlink(g->listen_path);
        g->listen_path[0] = 0;
    }
}

/* The stream (or the snapshot's state records) is hostile input: it is
 * parsed on a thread of its own under the migration role's seccomp filter
 * (main is not filtered yet while a destination waits). */
static void *incoming_thread(void *arg)
{
    Migration *g = arg;
    const MigHost *h = g->host;
    bool strict, paused = false;
    int r = -1;
    if (!h->enter_thread || h->enter_thread(h->opaque, &strict) == 0) {
        if (g->inc_file)
            r = mig_restore_fd(h->m, g->inc_fd, g->inc_prefault,
                               g->inc_premap.nblocks ? &g->inc_premap : NULL, &paused);
        else
            r = mig_load_fd(h->m, g->inc_fd, g->inc_abort_fd, g->pagemap_fd, &paused);
    }
    pthread_mutex_lock(&g->lock);
    g->inc_paused = paused;
    if (r == 0)
        g->owner = MIG_OWNER_DESTINATION; /* GO came (or the snapshot is ours) */
    pthread_mutex_unlock(&g->lock);
    if (r < 0) /* the loader printed the details */
        mig_set_error(g,
                      "the incoming %s was refused or broke off; the guest is not started "
                      "(strata's log says why)",
                      g->inc_file ? "snapshot" : "migration stream");
    mig_set_status(g, r == 0 ? MIG_COMPLETED : MIG_FAILED);
    return NULL;
}

/* Starts the loader on fd (owned from now on): status active. */
static void start_loader(Migration *g, int fd)
{
    g->inc_fd = fd;
    mig_set_status(g, MIG_ACTIVE);
    int e = pthread_create(&g->thread, NULL, incoming_thread, g);
    if (e) {
        log_msg(LOG_ERROR, "incoming migration: cannot start a thread: %s", strerror(e));
        mig_set_error(g, "cannot start the loader thread: %s", strerror(e));
        mig_set_status(g, MIG_FAILED);
        return;
    }
    pthread_mutex_lock(&g->lock);
    g->thread_running = true;
    pthread_mutex_unlock(&g->lock);
}

/* The listening socket is readable: the source (or whoever comes first,
 * docs/migration.md, Transport) connected. */
static void on_listen(EvSource *src, uint32_t events)
{
    Migration *g = (Migration *)((char *)src - offsetof(Migration, listen_src));
    (void)events;
    int fd = accept4(g->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED)
            return;
        log_msg(LOG_ERROR, "incoming migration: accept: %s", strerror(errno));
        mig_set_error(g, "accept: %s", strerror(errno));
        stop_listening(g);
        mig_set_status(g, MIG_FAILED);
        return;
    }
    stop_listening(g); /* exactly one connection */
    start_loader(g, fd);
}

/* Listens on uri for the main loop: 0, or -1 with err. */
static int start_listening(Migration *g, const char *uri, char *err, size_t errlen)
{
    const MigHost *h = g->host;
    /* the main thread, not filtered yet: host names resolve */
    int lfd = mig_listen(uri, false, err, errlen);
    if (lfd < 0)
        return -1;
    int fl = fcntl(lfd, F_GETFL);
    g->listen_src.handler = on_listen;
    int r = fl < 0 || fcntl(lfd, F_SETFL, fl | O_NONBLOCK) < 0 ? -errno : 0;
    if (r == 0)
        r = ev_add(h->epfd, lfd, EPOLLIN, &g->listen_src);
    if (r < 0) {
        snprintf(err, errlen, "%s: %s", uri, strerror(-r));
        close(lfd);
        if (!strncmp(uri, "unix:", 5))
            unlink(uri + 5);
        return -1;
    }
    g->listen_fd = lfd;
    if (!strncmp(uri, "unix:", 5)) {
        snprintf(g->listen_path, sizeof(g->listen_path), "%s", uri + 5);
        if (h->crash_unlink) /* a seccomp kill removes it too */
            h->crash_unlink(h->opaque, g->listen_path, true);
    }
    return 0;
}

int mig_incoming_start(Migration *g, const char *uri, bool prefault, char *err, size_t errlen)
{
    const MigHost *h = g->host;
    const char *why = mig_check_uri(uri);
    if (why) {
        snprintf(err, errlen, "%s: %s", uri, why);
        return -1;
    }
    if (h->incoming_prepare && h->incoming_prepare(h->opaque, uri, err, errlen) < 0)
        return -1;
    bool file = mig_uri_is_file(uri);
    int fd = -1;
    if (file && g->inc_premap.fd >= 0) {
        fd = g->inc_premap.fd; /* opened and its RAM mapped already: inc_fd owns it */
        g->inc_premap.fd = -1;
    } else if (file) {
        g->inc_premap.nblocks = 0; /* nothing mapped ahead */
        /* opened here: the loader's filter allows no open */
        fd = open(uri + 5, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            snprintf(err, errlen, "%s: %s", uri + 5, strerror(errno));
            return -1;
        }
    } else if (start_listening(g, uri, err, errlen) < 0) {
        return -1;
    }
    pthread_mutex_lock(&g->lock);
    snprintf(g->uri, sizeof(g->uri), "%s", uri);
    memset(&g->stats, 0, sizeof(g->stats));
    g->stats.start_ns = mig_now_ns();
    g->error[0] = 0;
    g->status = MIG_NONE;
    g->owner = MIG_OWNER_SOURCE; /* until GO */
    g->incoming = true;
    g->to_file = false;
    pthread_mutex_unlock(&g->lock);
    g->inc_mode = MIG_INCOMING_STARTED;
    g->inc_pending = true;
    g->inc_file = file;
    g->inc_prefault = prefault;
    mig_set_status(g, MIG_SETUP);
    if (file) {
        start_loader(g, fd);
    } else {
        char shown[sizeof(g->uri) * 4]; /* maybe a QMP client's text */
        log_report("waiting for an incoming migration on %s",
                   text_escape(shown, sizeof(shown), uri, strlen(uri)));
    }
    return 0;
}

void mig_incoming_premapped(Migration *g, const MigPremap *p)
{
    if (g->inc_premap.fd >= 0 && g->inc_premap.fd != p->fd)
        close(g->inc_premap.fd);
    g->inc_premap = *p;
    if (g->inc_premap.nblocks > 4)
        g->inc_premap.nblocks = 4;
}

void mig_incoming_defer(Migration *g)
{
    g->inc_mode = MIG_INCOMING_DEFERRED;
}

void mig_incoming_abort(Migration *g)
{
    uint64_t one = 1;
    if (!g)
        return;
    while (write(g->inc_abort_fd, &one, sizeof(one)) < 0 && errno == EINTR)
        ;
}

void mig_incoming_reap(Migration *g)
{
    const MigHost *h = g->host;
    if (g->thread_running) {
        pthread_join(g->thread, NULL);
        pthread_mutex_lock(&g->lock);
        g->thread_running = false;
        pthread_mutex_unlock(&g->lock);
    }
    stop_listening(g);
    if (g->inc_fd >= 0) {
        close(g->inc_fd); /* a restore's mappings keep the file */
        g->inc_fd = -1;
    }
    if (!g->inc_pending)
        return;
    g->inc_pending = false;
    pthread_mutex_lock(&g->lock);
    bool ok = g->status == MIG_COMPLETED, paused = g->inc_paused;
    g->stats.end_ns = mig_now_ns();
    pthread_mutex_unlock(&g->lock);
    if (h->incoming_done)
        h->incoming_done(h->opaque, ok, paused, g->uri);
}

void mig_incoming_free(Migration *g)
{
    if (g->incoming && g->thread_running) {
        mig_incoming_abort(g);
        pthread_join(g->thread, NULL);
        g->thread_running = false;
    }
    stop_listening(g);
    if (g->inc_fd >= 0) {
        close(g->inc_fd);
        g->inc_fd = -1;
    }
    if (g->inc_premap.fd >= 0) { /* premapped, never started */
        close(g->inc_premap.fd);
        g->inc_premap.fd = -1;
    }
}

json_t *mig_q_incoming(void *o, QmpClient *c, json_t *a, QmpError *err)
{
    Migration *g = o;
    (void)c;
    const char *uri = json_string_value(json_object_get(a, "uri"));
    char buf[400], e[400];
    const char *why = mig_incoming_refusal(g->inc_mode, uri, buf, sizeof(buf));
    if (why) {
        qmp_error_set(err, "%s", why);
        return NULL;
    }
    if (mig_incoming_start(g, uri, false, e, sizeof(e)) < 0) {
        qmp_error_set(err, "migrate-incoming: %s", e);
        return NULL;
    }
    return json_object();
}
