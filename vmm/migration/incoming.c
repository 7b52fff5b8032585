/* SPDX-License-Identifier: MIT */
/*
 * `strata run ... --incoming URI`: listen, take one connection, and load
 * the stream (mig_load_fd, destination.c) on a thread of its own under
 * the migration role's seccomp filter.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vmm/log.h"
#include "vmm/migration/internal.h"

/* Waits for a connection on lfd (or a signal on the main loop's fd). */
static int accept_one(int abort_fd, int lfd, const char *uri)
{
    for (;;) {
        struct pollfd p[2] = { { .fd = lfd, .events = POLLIN },
                               { .fd = abort_fd, .events = POLLIN } };
        int n = poll(p, 2, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            log_msg(LOG_ERROR, "--incoming %s: poll: %s", uri, strerror(errno));
            return -1;
        }
        if (p[1].revents & POLLIN) {
            log_msg(LOG_ERROR,
                    "--incoming %s: interrupted by a signal before any "
                    "stream arrived",
                    uri);
            return -1;
        }
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0)
            return fd;
        if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED) {
            log_msg(LOG_ERROR, "--incoming %s: accept: %s", uri, strerror(errno));
            return -1;
        }
    }
}

typedef struct LoadJob {
    Migration *g;
    int fd;
    bool file, prefault;
    bool paused;
    int r;
} LoadJob;

/* The stream is hostile input: it is parsed on a thread of its own under
 * the migration role's seccomp filter (main is not filtered yet here). */
static void *load_thread(void *arg)
{
    LoadJob *j = arg;
    j->r = -1;
    const MigHost *h = j->g->host;
    bool strict;
    if (h->enter_thread && h->enter_thread(h->opaque, &strict) < 0)
        return NULL;
    if (j->file)
        j->r = mig_restore_fd(h->m, j->fd, j->prefault, &j->paused);
    else
        j->r = mig_load_fd(h->m, j->fd, h->abort_fd, j->g->pagemap_fd, &j->paused);
    return NULL;
}

/* Runs job on a thread of its own (the stream is hostile input). */
static int run_job(LoadJob *job, bool *start_paused)
{
    pthread_t t;
    int e = pthread_create(&t, NULL, load_thread, job);
    if (e) {
        log_msg(LOG_ERROR, "incoming migration: cannot start a thread: %s", strerror(e));
        return -1;
    }
    pthread_join(t, NULL);
    *start_paused = job->paused;
    return job->r;
}

int mig_incoming(Migration *g, const char *uri, bool prefault, bool *start_paused)
{
    const MigHost *h = g->host;
    char err[300];
    if (!strncmp(uri, "file:", 5)) {
        /* opened here: the loader's filter allows no open */
        int fd = open(uri + 5, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            log_msg(LOG_ERROR, "restore: %s: %s", uri + 5, strerror(errno));
            return -1;
        }
        LoadJob job = { g, fd, true, prefault, false, -1 };
        int r = run_job(&job, start_paused);
        close(fd); /* the mappings keep the file */
        if (r == 0) {
            pthread_mutex_lock(&g->lock);
            g->status = MIG_COMPLETED;
            g->owner = MIG_OWNER_DESTINATION;
            g->incoming = true;
            snprintf(g->uri, sizeof(g->uri), "%s", uri);
            pthread_mutex_unlock(&g->lock);
        }
        return r;
    }
    /* the main thread, not filtered yet: host names resolve */
    int lfd = mig_listen(uri, false, err, sizeof(err));
    if (lfd < 0) {
        log_msg(LOG_ERROR, "--incoming %s", err);
        return -1;
    }
    bool is_unix = !strncmp(uri, "unix:", 5);
    if (is_unix && h->crash_unlink)
        h->crash_unlink(h->opaque, uri + 5, true); /* a seccomp kill removes it too */
    log_report("waiting for an incoming migration on %s", uri);
    int fd = accept_one(h->abort_fd, lfd, uri);
    close(lfd);
    if (is_unix) {
        if (h->crash_unlink)
            h->crash_unlink(h->opaque, uri + 5, false);
        unlink(uri + 5);
    }
    if (fd < 0)
        return -1;
    LoadJob job = { g, fd, false, false, false, -1 };
    int r = run_job(&job, start_paused);
    close(fd);
    if (r == 0) {
        /* query-migrate here: the guest came in and is this side's */
        pthread_mutex_lock(&g->lock);
        g->status = MIG_COMPLETED;
        g->owner = MIG_OWNER_DESTINATION;
        g->incoming = true;
        snprintf(g->uri, sizeof(g->uri), "%s", uri);
        pthread_mutex_unlock(&g->lock);
    }
    return r;
}
