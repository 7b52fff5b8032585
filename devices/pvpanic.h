/* SPDX-License-Identifier: MIT */
/*
 * The pvpanic device (one byte of port I/O, ACPI id QEMU0001): a guest
 * kernel that finds it writes PVPANIC_PANICKED to it when it panics, so the
 * VMM can stop and say so instead of leaving a dead guest running.  Reads
 * return the events the device supports.
 */
#ifndef STRATA_DEVICES_PVPANIC_H
#define STRATA_DEVICES_PVPANIC_H

#include <stddef.h>
#include <stdint.h>

#include "devices/device.h"
#include "memory/memory.h"
#include "memory/state-table.h"

#define PVPANIC_PORT 0x505
#define PVPANIC_PANICKED (1u << 0)
#define PVPANIC_CRASH_LOADED (1u << 1)
#define PVPANIC_STATE_MAGIC 0x43494e50u /* "PNIC" */
#define PVPANIC_STATE_VERSION 1

typedef void (*PvpanicFn)(void *opaque, uint8_t events);

typedef struct PvpanicState {
    MemoryRegion io; /* "pvpanic", 1 byte */
    PvpanicFn fn;
    void *opaque;
    uint8_t events; /* every event the guest reported (atomic) */
} PvpanicState;

/* What pvpanic saves (section PVPANIC_STATE_MAGIC, pvpanic_state_section). */
typedef struct PvpanicStateData {
    uint8_t events; /* PVPANIC_PANICKED | PVPANIC_CRASH_LOADED */
} PvpanicStateData;

/* Its section: magic, version and field table. */
extern const StateSection pvpanic_state_section;

/* Makes the region; fn (may be NULL) is called on the writing vCPU's thread
 * with the events written.  0 or a negative errno. */
int pvpanic_init(PvpanicState *s, MemoryContext *ctx, PvpanicFn fn, void *opaque);
/* Destroys the region (it must be unmapped first). */
void pvpanic_destroy(PvpanicState *s);
/* Forgets the reported events (machine reset). */
void pvpanic_reset(PvpanicState *s);
/* Its state as one section of a device-state stream (malloc()ed). */
int pvpanic_save(PvpanicState *s, uint8_t **buf, size_t *len);
/* Restores a saved state; a truncated, corrupt or inconsistent stream is
 * refused (-EINVAL, err says why) and leaves the device unchanged. */
int pvpanic_load(PvpanicState *s, const uint8_t *buf, size_t len, char *err, size_t errlen);

/* Reset, save, load and destroy for a board's device list (devices/device.h). */
extern const DeviceOps pvpanic_device_ops;

#endif /* STRATA_DEVICES_PVPANIC_H */
