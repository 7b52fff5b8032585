/* SPDX-License-Identifier: MIT */
/*
 * The machine's virtio devices (--disk, --net, --rng, --balloon) and the one event-loop
 * thread that serves them: queue notifications arrive there through
 * ioeventfds, never on a vCPU.  This knows nothing of the board (no
 * machine.h): each device it makes is handed to the board's place
 * callback (machine_add_virtio), which maps it in a virtio-mmio slot, wires
 * its interrupt and adds it to the device list.  The board calls this; it
 * never calls the board back by name.
 */
#ifndef STRATA_VMM_MACHINE_VIRTIO_H
#define STRATA_VMM_MACHINE_VIRTIO_H

#include "devices/device.h"
#include "devices/virtio-mmio.h"
#include "memory/memory.h"
#include "vmm/config.h"

typedef struct VirtioDevs VirtioDevs;

/* Places virtio device dev (its transport t, ops for the device list) on
 * the board, which owns dev from the call on, also on failure.  0, or -1
 * after printing why. */
typedef int (*VirtioPlaceFn)(void *board, VirtioMmio *t, const DeviceOps *ops, void *dev);

/*
 * Creates cfg's virtio devices (disks, then nets, then the rng, then the
 * balloon) on a new
 * event loop in *out, over guest memory as in ctx, handing each to
 * place(board, ...).  *out stays NULL when cfg asks for no device and is
 * set as soon as the loop exists, so virtio_devs_free cleans up after a
 * failure.  0, or -1 after printing why.
 */
int virtio_devs_create(VirtioDevs **out, const VmConfig *cfg, MemoryContext *ctx, AddressSpace *as,
                       VirtioPlaceFn place, void *board);
/* Starts the event-loop thread, which calls enter(opaque) first (its
 * restrictions; nonzero ends the thread) when enter is not NULL.  0, or -1
 * after printing why; NULL v is a no-op. */
int virtio_devs_start(VirtioDevs *v, int (*enter)(void *opaque), void *opaque);
/* Holds the event loop between handler batches (no device touches guest
 * memory) / lets it go again.  NULL v is a no-op, as for all below. */
void virtio_devs_pause(VirtioDevs *v);
void virtio_devs_resume(VirtioDevs *v);
/* Ends a virtio_devs_pause for good: the devices never run again. */
void virtio_devs_halt(VirtioDevs *v);
/* Stops the event-loop thread (no device work after this). */
void virtio_devs_stop(VirtioDevs *v);
/* Frees the event loop (the devices must be destroyed). */
void virtio_devs_free(VirtioDevs *v);

#endif /* STRATA_VMM_MACHINE_VIRTIO_H */
