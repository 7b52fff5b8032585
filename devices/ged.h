/* SPDX-License-Identifier: MIT */
/*
 * strata's ACPI Generic Event Device (GED) register: how the VMM tells a
 * hardware-reduced ACPI guest that something happened: the power button
 * was pressed, or the VM generation ID changed (a snapshot was restored).  A HW-reduced machine has no fixed power button and
 * no GPE block; instead the DSDT describes a GED (_HID "ACPI0013") whose
 * _CRS lists one interrupt and whose _EVT method reads this register,
 * acknowledges what it saw, and notifies the matching ACPI device (the
 * PNP0C0C power button: Notify 0x80).  vmm/boot/acpi.c emits that AML.
 *
 * Register file: GED_REG_SIZE bytes of I/O, one little-endian 32-bit
 * register at offset 0 ("event status"), any access size 1..4:
 *   read   the pending events (GED_EVENT_* bits); no side effect
 *   write  each 1 bit acknowledges (clears) that event; 0 bits do nothing
 * The interrupt line is level triggered and asserted while any event is
 * pending, so an event raised while the guest handles another one is not
 * lost, and a guest that never acknowledges sees the line stay high (its
 * problem, not the VMM's: the line is not re-pulsed).
 */
#ifndef STRATA_DEVICES_GED_H
#define STRATA_DEVICES_GED_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/device.h"
#include "memory/irq-line.h"
#include "memory/memory.h"
#include "memory/state-table.h"

#define GED_REG_SIZE 4
#define GED_EVENT_POWER_BUTTON (1u << 0)
#define GED_EVENT_VMGENID (1u << 1) /* the VM generation ID changed (a restore) */
#define GED_EVENTS_ALL (GED_EVENT_POWER_BUTTON | GED_EVENT_VMGENID)
#define GED_STATE_MAGIC 0x20444547u /* "GED " */
#define GED_STATE_VERSION 1

typedef struct GedState {
    MemoryRegion io; /* "acpi-ged", GED_REG_SIZE bytes */
    bool initialized;
    pthread_mutex_t lock; /* pending + the line level: main and vCPU threads */
    IrqLine irq;
    uint32_t pending;       /* GED_EVENT_* not yet acknowledged */
    bool level;             /* what the line was last driven to */
    uint64_t raised, acked; /* statistics: events raised / acknowledged */
} GedState;

/* What the GED saves (section GED_STATE_MAGIC, ged_state_section). */
typedef struct GedStateData {
    uint32_t pending; /* GED_EVENT_* not yet acknowledged */
} GedStateData;

/* Its section: magic, version and field table. */
extern const StateSection ged_state_section;

/* Makes the region and keeps irq (copied; NULL = unconnected).  0 or a
 * negative errno. */
int ged_init(GedState *s, MemoryContext *ctx, const IrqLine *irq);
/* Destroys the region (it must be unmapped first) and the lock. */
void ged_destroy(GedState *s);
/* Marks events (GED_EVENT_* bits; unknown bits are ignored) pending and
 * asserts the line.  Any thread.  Returns the events now pending. */
uint32_t ged_raise(GedState *s, uint32_t events);
/* The events now pending. */
uint32_t ged_pending(GedState *s);
/* Power-on state: nothing pending, line deasserted. */
void ged_reset(GedState *s);
/* Its state as one section of a device-state stream (malloc()ed). */
int ged_save(GedState *s, uint8_t **buf, size_t *len);
/* Restores a saved state and drives the line to match it; a truncated,
 * corrupt or inconsistent stream is refused (-EINVAL/-ENODATA, err says
 * why) and leaves the device unchanged. */
int ged_load(GedState *s, const uint8_t *buf, size_t len, char *err, size_t errlen);

/* Reset, save, load and destroy for a board's device list (devices/device.h). */
extern const DeviceOps ged_device_ops;

#endif /* STRATA_DEVICES_GED_H */
