/* SPDX-License-Identifier: MIT */
/*
 * `strata run ... --incoming URI`: listen, take one connection, and load
 * the stream (mig_load_fd, destination.c) on a thread of its own under
 * the migration role's seccomp filter.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vmm/migration/internal.h"
#include "vmm/sandbox.h"

/* Waits for a connection on lfd (or a signal on the main loop's fd). */
static int accept_one(Vmm *v, int lfd, const char *uri)
{
    for (;;) {
        struct pollfd p[2] = { { .fd = lfd, .events = POLLIN },
                               { .fd = v->sigfd, .events = POLLIN } };
        int n = poll(p, 2, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "strata: --incoming %s: poll: %s\n", uri, strerror(errno));
            return -1;
        }
        if (p[1].revents & POLLIN) {
            fprintf(stderr,
                    "strata: --incoming %s: interrupted by a signal before any "
                    "stream arrived\n",
                    uri);
            return -1;
        }
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0)
            return fd;
        if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED) {
            fprintf(stderr, "strata: --incoming %s: accept: %s\n", uri, strerror(errno));
            return -1;
        }
    }
}

typedef struct LoadJob {
    Vmm *v;
    int fd;
    bool paused;
    int r;
} LoadJob;

/* The stream is hostile input: it is parsed on a thread of its own under
 * the migration role's seccomp filter (main is not filtered yet here). */
static void *load_thread(void *arg)
{
    LoadJob *j = arg;
    j->r = -1;
    if (sandbox_enter(&j->v->sandbox, SANDBOX_ROLE_MIGRATION) == 0)
        j->r = mig_load_fd(j->v, j->fd, j->v->sigfd, &j->paused);
    return NULL;
}

int mig_incoming(Vmm *v, const char *uri, bool *start_paused)
{
    char err[300];
    int lfd = mig_listen(uri, err, sizeof(err));
    if (lfd < 0) {
        fprintf(stderr, "strata: --incoming %s\n", err);
        return -1;
    }
    bool is_unix = !strncmp(uri, "unix:", 5);
    if (is_unix)
        sandbox_fatal_unlink(uri + 5); /* a seccomp kill removes it too */
    fprintf(stderr, "strata: waiting for an incoming migration on %s\n", uri);
    int fd = accept_one(v, lfd, uri);
    close(lfd);
    if (is_unix) {
        sandbox_fatal_forget(uri + 5);
        unlink(uri + 5);
    }
    if (fd < 0)
        return -1;
    LoadJob job = { v, fd, false, -1 };
    pthread_t t;
    int e = pthread_create(&t, NULL, load_thread, &job);
    if (e) {
        fprintf(stderr, "strata: incoming migration: cannot start a thread: %s\n", strerror(e));
    } else {
        pthread_join(t, NULL);
        *start_paused = job.paused;
    }
    close(fd);
    if (!e && job.r == 0 && v->mig) {
        /* query-migrate here: the guest came in and is this side's */
        Migration *g = v->mig;
        pthread_mutex_lock(&g->lock);
        g->status = MIG_COMPLETED;
        g->owner = MIG_OWNER_DESTINATION;
        g->incoming = true;
        snprintf(g->uri, sizeof(g->uri), "%s", uri);
        pthread_mutex_unlock(&g->lock);
    }
    return e ? -1 : job.r;
}
