/* SPDX-License-Identifier: MIT */
/*
 * A driver/device interleaving model for counting notifications: a
 * virtio-rng behind the real transport and event loop (run by hand, so
 * each step is deterministic), a driver that adds requests in small
 * batches and kicks when Linux would (vt_kick_prepare), a device that runs
 * only when the schedule lets its thread run, and an interrupt handler
 * that runs only when an interrupt is pending and the schedule lets it,
 * re-arming used_event as Linux's virtqueue_enable_cb does.  The same seed
 * gives the same schedule with and without VIRTIO_F_EVENT_IDX, so the two
 * counts compare the same work.  Used by test_vq.c and bench/virtio-notify.
 */
#ifndef STRATA_TESTS_VIRTIO_VNOTIFY_H
#define STRATA_TESTS_VIRTIO_VNOTIFY_H

#include <stdbool.h>
#include <stdint.h>

typedef struct VnParams {
    unsigned requests;  /* requests to complete */
    uint16_t queue_num; /* ring size (power of two) */
    unsigned max_batch; /* the driver adds 1..max_batch before kick_prepare */
    unsigned p_device;  /* per step, % chance the device's thread runs */
    unsigned p_irq;     /* per step, % chance a pending interrupt is handled */
    uint64_t seed;
    bool event_idx;
    bool indirect; /* each request one indirect descriptor (2 buffers) */
} VnParams;

typedef struct VnResult {
    uint64_t completed;  /* used entries the driver consumed */
    uint64_t kicks;      /* the device's count of driver notifications */
    uint64_t interrupts; /* used-buffer interrupts raised */
    uint64_t suppressed; /* interrupt decisions that said no */
    uint64_t device_runs;
    uint64_t handler_runs; /* interrupt handler invocations */
    bool broken;           /* the device needed a reset (a bug: never expected) */
} VnResult;

/* Runs the model; 0, or -1 if the event loop cannot be made (no io_uring
 * with the features it needs) or the run did not finish. */
int vn_run(const VnParams *p, VnResult *r);

#endif /* STRATA_TESTS_VIRTIO_VNOTIFY_H */
