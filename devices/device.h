/* SPDX-License-Identifier: MIT */
/*
 * What a board does with any device, whatever it is: reset it, save and load
 * its state (one versioned section, memory/state-stream.h), and free it.  Every
 * device exports one `const DeviceOps` for this; a board keeps a list of
 * (ops, state, regions) records and walks it instead of naming devices.
 * Creating a device stays the device's own call (its arguments differ).
 */
#ifndef STRATA_DEVICES_DEVICE_H
#define STRATA_DEVICES_DEVICE_H

#include <stddef.h>
#include <stdint.h>

typedef struct DeviceOps {
    /* The device's name in migration streams and listings ("serial"); NULL
     * when each instance is named when it is added (virtio devices). */
    const char *name;
    /* Back to the power-on state (the guest's RAM may be gone next). */
    void (*reset)(void *dev);
    /* The whole state as one malloc()ed section; 0 or -ENOMEM. */
    int (*save)(void *dev, uint8_t **buf, size_t *len);
    /* Replaces the state with [buf, buf+len), or refuses it (negative errno,
     * reason in err) leaving the device unchanged. */
    int (*load)(void *dev, const uint8_t *buf, size_t len, char *err, size_t errlen);
    /* Frees what the device's init made (its regions are unmapped by then);
     * not the storage of dev itself. */
    void (*destroy)(void *dev);
} DeviceOps;

/*
 * Defines `const DeviceOps PREFIX_device_ops` named NAME from the device's
 * PREFIX_reset / _save / _load / _destroy functions on TYPE *: one line in
 * the device's file.
 */
#define DEVICE_OPS_DEFINE(prefix, type, devname) \
    static void prefix##_dev_reset(void *d) \
    { \
        prefix##_reset((type *)d); \
    } \
    static int prefix##_dev_save(void *d, uint8_t **b, size_t *l) \
    { \
        return prefix##_save((type *)d, b, l); \
    } \
    static int prefix##_dev_load(void *d, const uint8_t *b, size_t l, char *e, size_t el) \
    { \
        return prefix##_load((type *)d, b, l, e, el); \
    } \
    static void prefix##_dev_destroy(void *d) \
    { \
        prefix##_destroy((type *)d); \
    } \
    const DeviceOps prefix##_device_ops = { \
        .name = (devname), \
        .reset = prefix##_dev_reset, \
        .save = prefix##_dev_save, \
        .load = prefix##_dev_load, \
        .destroy = prefix##_dev_destroy, \
    }

#endif /* STRATA_DEVICES_DEVICE_H */
