/* SPDX-License-Identifier: MIT */
/*
 * virtio-rng (virtio 1.2, 5.4) over virtio-mmio: one request queue whose
 * device-writable buffers are filled from getrandom() (at most 64 KiB per
 * buffer chain).
 */
#ifndef STRATA_DEVICES_VIRTIO_RNG_H
#define STRATA_DEVICES_VIRTIO_RNG_H

#include "devices/virtio-mmio.h"

#define VIRTIO_ID_RNG 4
#define VIRTIO_RNG_STATE_MAGIC 0x474e5256u /* "VRNG" */
#define VIRTIO_RNG_STATE_VERSION 1
#define VIRTIO_RNG_MAX_FILL 65536u

typedef struct VirtioRng {
    VirtioMmio t; /* first: the transport */
    VirtqElem elem;
    uint64_t bytes; /* statistics: bytes handed to the guest */
} VirtioRng;

/* What a virtio-rng saves (section VIRTIO_RNG_STATE_MAGIC,
 * virtio_rng_state_section): the transport only. */
typedef struct VirtioRngStateData {
    VirtioMmioStateData t;
} VirtioRngStateData;

/* Its section: magic, version and field table. */
extern const StateSection virtio_rng_state_section;

/* Sets up the device (see virtio_mmio_init for the arguments); 0 or -errno. */
int virtio_rng_init(VirtioRng *d, const VirtioEnv *env);
/* Frees what init made (unmap the region first). */
void virtio_rng_destroy(VirtioRng *d);

/* Reset, save, load and destroy for a board's device list (devices/device.h). */
extern const DeviceOps virtio_rng_device_ops;

#endif /* STRATA_DEVICES_VIRTIO_RNG_H */
