/* SPDX-License-Identifier: MIT */
/* epoll event loop for device backends (see evloop.h). */
#include "devices/evloop.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

typedef struct EvEntry {
    int fd;
    bool dead;
    EvloopHandler cb;
    void *opaque;
    struct EvEntry *next;       /* all entries, or the graveyard */
} EvEntry;

struct Evloop {
    int epfd;
    int wakefd;
    pthread_mutex_t lock;
    EvEntry *entries;
    EvEntry *graveyard;         /* deleted, freed after the current batch */
    unsigned dispatching;       /* batches in progress */
    pthread_t thread;
    bool running;
    volatile bool stop;
};

Evloop *evloop_new(void)
{
    Evloop *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    l->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (l->epfd < 0 || l->wakefd < 0)
        goto fail;
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wakefd, &ev) < 0)
        goto fail;
    pthread_mutex_init(&l->lock, NULL);
    return l;
fail:;
    int e = errno;
    if (l->epfd >= 0)
        close(l->epfd);
    if (l->wakefd >= 0)
        close(l->wakefd);
    free(l);
    errno = e;
    return NULL;
}

static void free_list(EvEntry *e)
{
    while (e) {
        EvEntry *n = e->next;
        free(e);
        e = n;
    }
}

void evloop_free(Evloop *l)
{
    if (!l)
        return;
    evloop_stop(l);
    free_list(l->entries);
    free_list(l->graveyard);
    close(l->epfd);
    close(l->wakefd);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

int evloop_add(Evloop *l, int fd, uint32_t events, EvloopHandler cb, void *opaque)
{
    EvEntry *e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    e->fd = fd;
    e->cb = cb;
    e->opaque = opaque;
    struct epoll_event ev = { .events = events, .data.ptr = e };
    pthread_mutex_lock(&l->lock);
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        int err = errno;
        pthread_mutex_unlock(&l->lock);
        free(e);
        return -err;
    }
    e->next = l->entries;
    l->entries = e;
    pthread_mutex_unlock(&l->lock);
    return 0;
}

static EvEntry *find(Evloop *l, int fd, EvEntry ***link)
{
    for (EvEntry **p = &l->entries; *p; p = &(*p)->next) {
        if ((*p)->fd == fd) {
            if (link)
                *link = p;
            return *p;
        }
    }
    return NULL;
}

int evloop_mod(Evloop *l, int fd, uint32_t events)
{
    int r = 0;
    pthread_mutex_lock(&l->lock);
    EvEntry *e = find(l, fd, NULL);
    struct epoll_event ev = { .events = events, .data.ptr = e };
    if (!e)
        r = -ENOENT;
    else if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
        r = -errno;
    pthread_mutex_unlock(&l->lock);
    return r;
}

int evloop_del(Evloop *l, int fd)
{
    EvEntry **link;
    pthread_mutex_lock(&l->lock);
    EvEntry *e = find(l, fd, &link);
    if (!e) {
        pthread_mutex_unlock(&l->lock);
        return -ENOENT;
    }
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
    *link = e->next;
    e->dead = true;
    if (l->dispatching) {
        e->next = l->graveyard;
        l->graveyard = e;
    } else {
        free(e);
    }
    pthread_mutex_unlock(&l->lock);
    return 0;
}

int evloop_run_once(Evloop *l, int timeout_ms)
{
    struct epoll_event evs[32];
    /* Counted from before the wait: an entry deleted by another thread
     * while we wait may still be in evs[], so it must outlive the batch. */
    pthread_mutex_lock(&l->lock);
    l->dispatching++;
    pthread_mutex_unlock(&l->lock);
    int n = epoll_wait(l->epfd, evs, 32, timeout_ms);
    int ran = 0;
    if (n < 0)
        ran = errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; i++) {
        EvEntry *e = evs[i].data.ptr;
        if (!e) {
            uint64_t v;
            ssize_t r = read(l->wakefd, &v, sizeof(v));
            (void)r;
            continue;
        }
        pthread_mutex_lock(&l->lock);
        bool dead = e->dead;
        pthread_mutex_unlock(&l->lock);
        if (dead)
            continue;
        e->cb(e->opaque, evs[i].events);
        ran++;
    }
    pthread_mutex_lock(&l->lock);
    if (--l->dispatching == 0) {
        free_list(l->graveyard);
        l->graveyard = NULL;
    }
    pthread_mutex_unlock(&l->lock);
    return ran;
}

static void *loop_thread(void *arg)
{
    Evloop *l = arg;
    while (!l->stop) {
        int r = evloop_run_once(l, -1);
        if (r < 0) {
            fprintf(stderr, "strata: device event loop: %s\n", strerror(-r));
            break;
        }
    }
    return NULL;
}

int evloop_start(Evloop *l, const char *name)
{
    if (l->running)
        return -EBUSY;
    l->stop = false;
    int r = pthread_create(&l->thread, NULL, loop_thread, l);
    if (r)
        return -r;
    if (name)
        pthread_setname_np(l->thread, name);
    l->running = true;
    return 0;
}

void evloop_stop(Evloop *l)
{
    if (!l->running)
        return;
    l->stop = true;
    uint64_t one = 1;
    ssize_t r = write(l->wakefd, &one, sizeof(one));
    (void)r;
    pthread_join(l->thread, NULL);
    l->running = false;
}
