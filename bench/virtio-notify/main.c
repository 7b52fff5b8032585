/* SPDX-License-Identifier: MIT */
/*
 * Notifications per N requests, with and without VIRTIO_F_EVENT_IDX, side
 * by side: the same seeded schedule of driver batches, device runs and
 * interrupt handling (tests/virtio/vnotify.h) over a virtio-rng and the
 * real transport, counted by the transport's per-queue counters.  Counts,
 * not times: the figures are the same on every host.
 *
 *   bench/virtio-notify/virtio-notify [REQUESTS]     (default 100000)
 *
 * Columns: the schedule (driver batch of 1..B requests per kick decision,
 * the device thread's and the interrupt handler's chance to run per step),
 * then kicks and interrupts per 1000 requests without / with EVENT_IDX.
 * Indirect descriptors do not change these counts (test_vq.c checks the
 * same schedule both ways).
 */
#include <stdio.h>
#include <stdlib.h>

#include "tests/virtio/vnotify.h"

int main(int argc, char **argv)
{
    unsigned requests = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 0) : 100000;
    static const struct {
        const char *what;
        unsigned batch, p_device, p_irq;
    } sched[] = {
        { "device and driver keep pace", 1, 90, 90 },
        { "driver batches of 1-4", 4, 90, 90 },
        { "slow device", 4, 20, 90 },
        { "slow interrupt handler", 4, 90, 20 },
        { "both slow", 4, 30, 30 },
        { "bursts of 1-16, slow device", 16, 10, 50 },
    };
    if (requests == 0) {
        fprintf(stderr, "usage: %s [REQUESTS]\n", argv[0]);
        return 2;
    }
    printf("virtio-notify: %u requests per run, queue size 64, virtio-rng\n", requests);
    printf("%-28s %5s %4s %4s | %15s | %15s\n", "", "", "", "", "kicks / 1000",
           "interrupts / 1000");
    printf("%-28s %5s %4s %4s | %7s %7s | %7s %7s\n", "schedule", "batch", "dev%", "irq%",
           "without", "with", "without", "with");
    for (size_t i = 0; i < sizeof(sched) / sizeof(sched[0]); i++) {
        VnParams p = { .requests = requests,
                       .queue_num = 64,
                       .max_batch = sched[i].batch,
                       .p_device = sched[i].p_device,
                       .p_irq = sched[i].p_irq,
                       .seed = 0x9e3779b97f4a7c15ull + i };
        VnResult off, on;
        if (vn_run(&p, &off) < 0) {
            fprintf(stderr, "virtio-notify: the model did not run (no io_uring event loop?)\n");
            return 1;
        }
        p.event_idx = true;
        if (vn_run(&p, &on) < 0) {
            fprintf(stderr, "virtio-notify: the EVENT_IDX run failed\n");
            return 1;
        }
        double k = 1000.0 / requests;
        printf("%-28s %5u %4u %4u | %7.1f %7.1f | %7.1f %7.1f\n", sched[i].what, sched[i].batch,
               sched[i].p_device, sched[i].p_irq, off.kicks * k, on.kicks * k, off.interrupts * k,
               on.interrupts * k);
    }
    return 0;
}
