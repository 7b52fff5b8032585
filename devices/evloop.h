/* SPDX-License-Identifier: MIT */
/*
 * A small io_uring event loop for device backends (virtio notifications,
 * interrupt resample events, TAP and io_uring completions): each fd is
 * watched with IORING_OP_POLL_ADD, re-armed after its handler, so readiness
 * is level triggered.  Needs IORING_FEAT_EXT_ARG (Linux 5.11).  Handlers run on the loop's own thread once
 * evloop_start() was called, or on the caller's thread in evloop_run_once()
 * (unit tests drive the loop by hand that way).  add/mod/del may be called
 * from any thread; a handler deleted while a batch is being dispatched is
 * not called again and is freed after the batch.  Only the thread in
 * evloop_run_once enters the ring (add/mod/del wake it), and the ring can
 * do nothing but poll (see evloop.c).
 */
#ifndef STRATA_DEVICES_EVLOOP_H
#define STRATA_DEVICES_EVLOOP_H

#include <stdint.h>

typedef struct Evloop Evloop;
struct io_uring;

/* Called with the events (EPOLLIN, ... = the poll(2) bits) that fired for the fd. */
typedef void (*EvloopHandler)(void *opaque, uint32_t events);

/* A new loop (no thread yet), or NULL with errno set (the kernel's answer
 * when it cannot make the loop a restricted io_uring; ENOSYS: no
 * IORING_FEAT_EXT_ARG). */
Evloop *evloop_new(void);
/* Stops the thread if running and frees the loop (fds are not closed). */
void evloop_free(Evloop *l);
/* Watches fd for events (EPOLLIN/EPOLLOUT); 0 or a negative errno. */
int evloop_add(Evloop *l, int fd, uint32_t events, EvloopHandler cb, void *opaque);
/* Changes the events watched on fd (0 = none, the fd stays registered). */
int evloop_mod(Evloop *l, int fd, uint32_t events);
/* Stops watching fd; its handler is not called after this returns on the
 * loop thread, or after the current batch on other threads. */
int evloop_del(Evloop *l, int fd);
/* Waits up to timeout_ms (-1: forever) and runs ready handlers; returns how
 * many ran, or a negative errno. */
int evloop_run_once(Evloop *l, int timeout_ms);
/* Called first on the loop's thread (the VMM installs its seccomp filter
 * there); a negative return stops the thread and evloop_start returns it. */
typedef int (*EvloopThreadHook)(void *opaque);
/* Sets the thread-start hook; call before evloop_start (NULL = none). */
void evloop_set_thread_hook(Evloop *l, EvloopThreadHook fn, void *opaque);
/* Runs the loop on a new thread named `name`, once its thread-start hook
 * succeeded; 0 or a negative errno. */
int evloop_start(Evloop *l, const char *name);
/* Waits until no handler of l runs and keeps it so (completions queue up)
 * until evloop_resume: devices then neither touch guest memory nor change
 * state (migration's final round).  Not from a handler of l itself. */
void evloop_pause(Evloop *l);
/* Ends an evloop_pause; queued events are handled again. */
void evloop_resume(Evloop *l);
/* Ends an evloop_pause for good: no handler runs again (the thread ends,
 * evloop_run_once returns -ESHUTDOWN); a migrated-away VM's devices. */
void evloop_halt(Evloop *l);
/* Stops and joins the thread started by evloop_start (no-op if none). */
void evloop_stop(Evloop *l);
/* A one-shot timer served by a loop: a timerfd (made here, so before any
 * seccomp filter) whose expiry calls cb(opaque) on the loop's thread. */
typedef struct EvloopTimer EvloopTimer;
/* A disarmed timer on l, or NULL with errno set. */
EvloopTimer *evloop_timer_new(Evloop *l, void (*cb)(void *opaque), void *opaque);
/* Fires once, ns nanoseconds from now (0: disarms); any thread.  0 or a
 * negative errno. */
int evloop_timer_arm(EvloopTimer *t, uint64_t ns);
/* Stops watching and closes the timer (NULL: nothing). */
void evloop_timer_free(EvloopTimer *t);
/* The loop's ring, for tests that check what it refuses. */
struct io_uring *evloop_ring(Evloop *l);

#endif /* STRATA_DEVICES_EVLOOP_H */
