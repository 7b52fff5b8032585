/* SPDX-License-Identifier: MIT */
/* The --metrics file (see metrics.h). */
#include "vmm/control/metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "vmm/loop.h"

struct Metrics {
    EvSource src; /* first: the timer's handler gets it */
    int fd, timer_fd, epfd;
    char *path;
    MetricsCollect collect;
    void *opaque;
    unsigned long failures;
};

static void on_timer(EvSource *src, uint32_t events)
{
    Metrics *m = (Metrics *)src;
    uint64_t n;
    (void)events;
    if (read(m->timer_fd, &n, sizeof(n)) != sizeof(n))
        return; /* spurious */
    metrics_write(m);
}

Metrics *metrics_open(const char *path, unsigned interval_s, int epfd, MetricsCollect collect,
                      void *opaque)
{
    Metrics *m = calloc(1, sizeof(*m));
    if (!m || !(m->path = strdup(path))) {
        fprintf(stderr, "strata: --metrics %s: out of memory\n", path);
        free(m);
        return NULL;
    }
    m->timer_fd = -1;
    m->epfd = -1;
    m->collect = collect;
    m->opaque = opaque;
    m->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0600);
    if (m->fd < 0) {
        fprintf(stderr, "strata: --metrics %s: %s\n", path,
                errno == ENXIO ? "a FIFO with no reader" : strerror(errno));
        metrics_close(m);
        return NULL;
    }
    if (epfd >= 0) {
        struct itimerspec its = { .it_interval = { (time_t)interval_s, 0 },
                                  .it_value = { (time_t)interval_s, 0 } };
        m->src.handler = on_timer;
        m->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        int r = m->timer_fd < 0 || timerfd_settime(m->timer_fd, 0, &its, NULL) < 0 ? -errno : 0;
        if (r == 0)
            r = ev_add(epfd, m->timer_fd, EPOLLIN, &m->src);
        if (r < 0) {
            fprintf(stderr, "strata: --metrics %s: timer: %s\n", path, strerror(-r));
            metrics_close(m);
            return NULL;
        }
        m->epfd = epfd;
    }
    return m;
}

int metrics_write(Metrics *m)
{
    json_t *o = m->collect(m->opaque);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text)
        return 0;
    size_t len = strlen(text);
    text[len] = '\n'; /* json_dumps' NUL: a line is written whole or not */
    ssize_t w;
    do {
        w = write(m->fd, text, len + 1);
    } while (w < 0 && errno == EINTR);
    int r = w < 0 ? -errno : (size_t)w != len + 1 ? -EIO : 0;
    free(text);
    if (r < 0 && m->failures++ == 0)
        fprintf(stderr,
                "strata: --metrics %s: writing a line failed (%s); the VM goes on, later "
                "failures are not reported\n",
                m->path, r == -EIO ? "short write" : strerror(-r));
    return r;
}

unsigned long metrics_failures(const Metrics *m)
{
    return m->failures;
}

void metrics_close(Metrics *m)
{
    if (!m)
        return;
    if (m->epfd >= 0)
        ev_del(m->epfd, m->timer_fd);
    if (m->timer_fd >= 0)
        close(m->timer_fd);
    if (m->fd >= 0)
        close(m->fd);
    free(m->path);
    free(m);
}
