/* SPDX-License-Identifier: MIT */
/*
 * io_uring event loop for device backends (see evloop.h).  Every watched fd
 * has at most one one-shot IORING_OP_POLL_ADD in flight, tagged with its
 * entry; the loop re-arms it after the handler ran (so readiness is level
 * triggered, like epoll's default).  mod/del cancel the poll with
 * IORING_OP_POLL_REMOVE; an entry is freed only once no poll of it is in
 * flight and no handler of it is running.
 *
 * Only the thread in evloop_run_once submits to the ring and reaps it:
 * add/mod/del (any thread) change the entries under `lock` and wake that
 * thread, which brings the ring in line (sync) before it waits and after
 * each batch.  So the device event-loop thread is the only one that needs
 * io_uring_enter (vmm/sandbox.c allows it to that role alone).
 *
 * The ring is restricted (devices/uring.h) to IORING_OP_POLL_ADD and
 * IORING_OP_POLL_REMOVE, all it submits (waiting with a timeout uses
 * IORING_FEAT_EXT_ARG, no TIMEOUT SQE), and to no io_uring_register once
 * enabled.  Its fds are not fixed files: the loop watches fds added at run
 * time, and a poll of an fd the process already holds moves no data and
 * makes no fd, it only tells readiness; fixed files would need
 * IORING_REGISTER_FILES_UPDATE, i.e. io_uring_register allowed to a
 * filtered thread, for nothing gained.  The opcode restriction alone keeps
 * OPENAT, SOCKET, CONNECT, SEND, READ and the rest off this ring.
 */
#include "devices/evloop.h"
#include "devices/uring.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define EVLOOP_RING_SIZE 256

typedef struct EvEntry {
    int fd;
    uint32_t events; /* wanted poll bits; 0 = registered, not polled */
    bool dead;       /* deleted: freed when not armed nor running */
    bool armed;      /* a POLL_ADD of it is in flight */
    bool running;    /* its handler is being called */
    bool cancel;     /* the poll in flight is to be removed (sync) */
    EvloopHandler cb;
    void *opaque;
    struct EvEntry *next; /* the live list, or the zombie list once dead */
} EvEntry;

struct Evloop {
    struct io_uring ring;
    bool ring_ok;
    int wakefd;
    bool wake_armed;
    bool in_run;          /* a thread is in evloop_run_once: */
    pthread_t runner;     /* that one; the others wake it to sync */
    pthread_mutex_t lock; /* the SQ, the lists and the entry flags */
    EvEntry *entries;
    EvEntry *zombies;         /* deleted, waiting for their last completion */
    pthread_mutex_t dispatch; /* held while a batch of handlers runs, and by evloop_pause */
    pthread_t thread;
    bool running;
    EvloopThreadHook hook; /* run first on the loop thread */
    void *hook_opaque;
    int hook_result; /* 1 = not run yet (under lock, hook_cond) */
    pthread_cond_t hook_cond;
    volatile bool stop;
    volatile bool halted; /* evloop_halt: no handler runs ever again */
};

/* user_data of the wake poll and of POLL_REMOVE requests (never entries). */
static char wake_tag, remove_tag;

/* Submits a one-shot poll of fd tagged `tag` (lock held); 0 or -errno. */
static int submit_poll(Evloop *l, int fd, uint32_t events, void *tag)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);
    if (!sqe) {
        io_uring_submit(&l->ring);
        sqe = io_uring_get_sqe(&l->ring);
        if (!sqe)
            return -EBUSY;
    }
    io_uring_prep_poll_add(sqe, fd, events);
    io_uring_sqe_set_data(sqe, tag);
    int r = io_uring_submit(&l->ring);
    return r < 0 ? r : 0;
}

/* Submits the cancellation of the poll tagged `tag` (lock held). */
static int submit_remove(Evloop *l, void *tag)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);
    if (!sqe) {
        io_uring_submit(&l->ring);
        sqe = io_uring_get_sqe(&l->ring);
        if (!sqe)
            return -EBUSY;
    }
    io_uring_prep_poll_remove(sqe, (__u64)(uintptr_t)tag);
    io_uring_sqe_set_data(sqe, &remove_tag);
    int r = io_uring_submit(&l->ring);
    return r < 0 ? r : 0;
}

/* Arms e's poll if it is live, wanted and not in flight (lock held, the
 * ring's thread). */
static void arm(Evloop *l, EvEntry *e)
{
    if (e->dead || e->armed || e->running || !e->events)
        return;
    int r = submit_poll(l, e->fd, e->events, e);
    if (r < 0)
        fprintf(stderr, "strata: device event loop: polling fd %d: %s\n", e->fd, strerror(-r));
    else
        e->armed = true;
}

static void arm_wake(Evloop *l)
{
    if (!l->wake_armed && submit_poll(l, l->wakefd, POLLIN, &wake_tag) == 0)
        l->wake_armed = true;
}

/* Brings the ring in line with the entries: the due POLL_REMOVEs, then the
 * polls to arm (lock held, the ring's thread). */
static void sync_ring(Evloop *l)
{
    for (EvEntry *e = l->zombies; e; e = e->next) {
        if (e->armed && e->cancel && submit_remove(l, e) == 0)
            e->cancel = false;
    }
    for (EvEntry *e = l->entries; e; e = e->next) {
        if (e->armed && e->cancel) {
            if (submit_remove(l, e) == 0)
                e->cancel = false; /* re-armed with the new bits on its completion */
        } else {
            arm(l, e);
        }
    }
    arm_wake(l);
}

/* Has the ring synced after a change (lock held): by the caller if it is
 * the thread in evloop_run_once (after its batch), else by waking that
 * thread; with no thread in it, the next evloop_run_once does it first. */
static void changed(Evloop *l)
{
    if (l->in_run && !pthread_equal(l->runner, pthread_self())) {
        uint64_t one = 1;
        ssize_t r = write(l->wakefd, &one, sizeof(one));
        (void)r;
    }
}

Evloop *evloop_new(void)
{
    Evloop *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (l->wakefd < 0)
        goto fail;
    static const uint8_t ops[] = { IORING_OP_POLL_ADD, IORING_OP_POLL_REMOVE };
    const UringRules rules = { .ops = ops, .nops = sizeof(ops) };
    int r = uring_init_restricted(&l->ring, EVLOOP_RING_SIZE, &rules, NULL);
    if (r < 0) {
        errno = -r;
        goto fail;
    }
    l->ring_ok = true;
    /* Waiting with a timeout must not take an SQE (other threads submit). */
    if (!(l->ring.features & IORING_FEAT_EXT_ARG)) {
        errno = ENOSYS;
        goto fail;
    }
    pthread_mutex_init(&l->lock, NULL);
    pthread_mutex_init(&l->dispatch, NULL);
    arm_wake(l);
    if (!l->wake_armed) {
        errno = EIO;
        pthread_mutex_destroy(&l->lock);
        pthread_mutex_destroy(&l->dispatch);
        goto fail;
    }
    return l;
fail:;
    int e = errno;
    if (l->ring_ok)
        io_uring_queue_exit(&l->ring);
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
    io_uring_queue_exit(&l->ring); /* cancels whatever is in flight */
    free_list(l->entries);
    free_list(l->zombies);
    close(l->wakefd);
    pthread_mutex_destroy(&l->lock);
    pthread_mutex_destroy(&l->dispatch);
    free(l);
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

int evloop_add(Evloop *l, int fd, uint32_t events, EvloopHandler cb, void *opaque)
{
    if (fd < 0 || fcntl(fd, F_GETFD) < 0)
        return -EBADF;
    EvEntry *e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    e->fd = fd;
    e->events = events;
    e->cb = cb;
    e->opaque = opaque;
    pthread_mutex_lock(&l->lock);
    if (find(l, fd, NULL)) {
        pthread_mutex_unlock(&l->lock);
        free(e);
        return -EEXIST;
    }
    e->next = l->entries;
    l->entries = e;
    changed(l);
    pthread_mutex_unlock(&l->lock);
    return 0;
}

int evloop_mod(Evloop *l, int fd, uint32_t events)
{
    int r = 0;
    pthread_mutex_lock(&l->lock);
    EvEntry *e = find(l, fd, NULL);
    if (!e) {
        r = -ENOENT;
    } else if (e->events != events) {
        e->events = events;
        e->cancel = e->armed;
        changed(l);
    }
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
    *link = e->next;
    e->dead = true;
    if (e->armed || e->running) {
        e->cancel = e->armed;
        e->next = l->zombies;
        l->zombies = e;
        changed(l);
    } else {
        free(e);
    }
    pthread_mutex_unlock(&l->lock);
    return 0;
}

/* Frees dead entry e once nothing refers to it (lock held). */
static void bury(Evloop *l, EvEntry *e)
{
    if (!e->dead || e->armed || e->running)
        return;
    for (EvEntry **p = &l->zombies; *p; p = &(*p)->next) {
        if (*p == e) {
            *p = e->next;
            break;
        }
    }
    free(e);
}

/* Handles one completion; true if a handler ran. */
static bool complete(Evloop *l, void *tag, int res)
{
    if (tag == &remove_tag)
        return false;
    pthread_mutex_lock(&l->lock);
    if (tag == &wake_tag) {
        uint64_t v;
        ssize_t r = read(l->wakefd, &v, sizeof(v));
        (void)r;
        l->wake_armed = false;
        arm_wake(l);
        pthread_mutex_unlock(&l->lock);
        return false;
    }
    EvEntry *e = tag;
    e->armed = false;
    e->cancel = false;
    uint32_t ev = res > 0 ? ((uint32_t)res & (e->events | POLLERR | POLLHUP)) : 0;
    bool call = !e->dead && ev;
    if (res < 0 && res != -ECANCELED && !e->dead)
        fprintf(stderr, "strata: device event loop: fd %d: %s\n", e->fd, strerror(-res));
    if (call)
        e->running = true;
    pthread_mutex_unlock(&l->lock);
    if (call)
        e->cb(e->opaque, ev);
    pthread_mutex_lock(&l->lock);
    e->running = false;
    if (e->dead)
        bury(l, e);
    else if (res >= 0 || res == -ECANCELED)
        arm(l, e);
    pthread_mutex_unlock(&l->lock);
    return call;
}

/* evloop_run_once's wait and batch. */
static int wait_and_dispatch(Evloop *l, int timeout_ms)
{
    struct io_uring_cqe *cqe = NULL;
    int r;
    if (timeout_ms < 0) {
        r = io_uring_wait_cqe(&l->ring, &cqe);
    } else {
        struct __kernel_timespec ts = { .tv_sec = timeout_ms / 1000,
                                        .tv_nsec = (long long)(timeout_ms % 1000) * 1000000 };
        r = io_uring_wait_cqe_timeout(&l->ring, &cqe, &ts);
    }
    if (r == -ETIME || r == -EINTR || r == -EAGAIN)
        return 0;
    if (r < 0)
        return r;
    int ran = 0;
    pthread_mutex_lock(&l->dispatch);
    if (l->halted) {
        pthread_mutex_unlock(&l->dispatch);
        return -ESHUTDOWN;
    }
    /* What had completed when the wait returned, one at a time: a re-armed
     * poll of a still-ready fd completes at once and waits for the next
     * batch (else a handler leaving its fd ready would never let go). */
    unsigned batch = io_uring_cq_ready(&l->ring);
    for (unsigned i = 0; i < batch && io_uring_peek_cqe(&l->ring, &cqe) == 0 && cqe; i++) {
        void *tag = io_uring_cqe_get_data(cqe);
        int res = cqe->res;
        io_uring_cqe_seen(&l->ring, cqe);
        if (complete(l, tag, res))
            ran++;
    }
    pthread_mutex_unlock(&l->dispatch);
    return ran;
}

int evloop_run_once(Evloop *l, int timeout_ms)
{
    pthread_mutex_lock(&l->lock);
    sync_ring(l);
    l->runner = pthread_self();
    l->in_run = true;
    pthread_mutex_unlock(&l->lock);
    int r = wait_and_dispatch(l, timeout_ms);
    pthread_mutex_lock(&l->lock);
    sync_ring(l); /* what the handlers changed */
    l->in_run = false;
    pthread_mutex_unlock(&l->lock);
    return r;
}

void evloop_set_thread_hook(Evloop *l, EvloopThreadHook fn, void *opaque)
{
    l->hook = fn;
    l->hook_opaque = opaque;
}

static void *loop_thread(void *arg)
{
    Evloop *l = arg;
    int hr = l->hook ? l->hook(l->hook_opaque) : 0;
    pthread_mutex_lock(&l->lock);
    l->hook_result = hr;
    pthread_cond_broadcast(&l->hook_cond);
    pthread_mutex_unlock(&l->lock);
    if (hr < 0)
        return NULL;
    while (!l->stop) {
        int r = evloop_run_once(l, -1);
        if (r == -ESHUTDOWN)
            break;
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
    l->hook_result = 1;
    pthread_cond_init(&l->hook_cond, NULL);
    int r = pthread_create(&l->thread, NULL, loop_thread, l);
    if (r) {
        pthread_cond_destroy(&l->hook_cond);
        return -r;
    }
    if (name)
        pthread_setname_np(l->thread, name);
    pthread_mutex_lock(&l->lock);
    while (l->hook_result == 1)
        pthread_cond_wait(&l->hook_cond, &l->lock);
    r = l->hook_result;
    pthread_mutex_unlock(&l->lock);
    pthread_cond_destroy(&l->hook_cond);
    if (r < 0) {
        pthread_join(l->thread, NULL);
        return r;
    }
    l->running = true;
    return 0;
}

void evloop_pause(Evloop *l)
{
    pthread_mutex_lock(&l->dispatch);
}

void evloop_resume(Evloop *l)
{
    pthread_mutex_unlock(&l->dispatch);
}

void evloop_halt(Evloop *l)
{
    l->halted = true;
    pthread_mutex_unlock(&l->dispatch);
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

struct io_uring *evloop_ring(Evloop *l)
{
    return &l->ring;
}

struct EvloopTimer {
    Evloop *loop;
    int fd;
    void (*cb)(void *opaque);
    void *opaque;
};

static void timer_fired(void *opaque, uint32_t events)
{
    EvloopTimer *t = opaque;
    uint64_t n;
    (void)events;
    if (read(t->fd, &n, sizeof(n)) == sizeof(n))
        t->cb(t->opaque);
}

EvloopTimer *evloop_timer_new(Evloop *l, void (*cb)(void *opaque), void *opaque)
{
    EvloopTimer *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    *t = (EvloopTimer){ l, -1, cb, opaque };
    t->fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    int r = t->fd < 0 ? -errno : evloop_add(l, t->fd, POLLIN, timer_fired, t);
    if (r < 0) {
        if (t->fd >= 0)
            close(t->fd);
        free(t);
        errno = -r;
        return NULL;
    }
    return t;
}

int evloop_timer_arm(EvloopTimer *t, uint64_t ns)
{
    struct itimerspec its = { .it_value = { .tv_sec = (time_t)(ns / 1000000000ull),
                                            .tv_nsec = (long)(ns % 1000000000ull) } };
    return timerfd_settime(t->fd, 0, &its, NULL) < 0 ? -errno : 0;
}

void evloop_timer_free(EvloopTimer *t)
{
    if (!t)
        return;
    evloop_del(t->loop, t->fd);
    close(t->fd);
    free(t);
}
