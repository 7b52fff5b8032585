/* SPDX-License-Identifier: MIT */
/*
 * The machine's power controls:
 *  - a minimal i8042 keyboard controller (data port 0x60, command/status
 *    port 0x64) without a keyboard: enough for the command byte, the self
 *    tests, and the two ways a guest resets through it (command 0xfe, or
 *    bit 0 of the output port cleared with command 0xd1).  Linux's
 *    `reboot` ends up there (or in a triple fault).
 *  - the ACPI (hardware-reduced) sleep control/status register pair at a
 *    caller-chosen port (control at +0, status at +1): writing SLP_EN with
 *    SLP_TYP 5 (the DSDT's \_S5) is a poweroff.
 * Either event calls the machine's power callback (from the vCPU thread).
 */
#ifndef STRATA_DEVICES_I8042_H
#define STRATA_DEVICES_I8042_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/device.h"
#include "memory/memory.h"
#include "memory/state-table.h"

#define I8042_DATA_PORT 0x60
#define I8042_CMD_PORT 0x64
#define I8042_STATE_MAGIC 0x32343038u /* "8042" */
#define I8042_STATE_VERSION 1
#define ACPI_SLEEP_TYPE_S5 5
#define ACPI_RESET_REG_OFFSET 2 /* reset register: sleep port + 2 */
#define ACPI_RESET_VALUE 0x42

typedef enum PowerEvent { POWER_RESET = 1, POWER_OFF = 2 } PowerEvent;
typedef void (*PowerEventFn)(void *opaque, PowerEvent ev);

typedef struct I8042State {
    MemoryRegion data_io, cmd_io, sleep_io; /* 1, 1 and 2 bytes of I/O */
    bool initialized;
    pthread_mutex_t lock;
    PowerEventFn fn;
    void *opaque;
    /* guest-visible state */
    uint8_t cmd_byte; /* controller configuration byte */
    uint8_t pending;  /* command waiting for its data byte (0: none) */
    uint8_t out;      /* output buffer */
    bool out_full;
    uint8_t sleep_status; /* WAK_STS (bit 7) */
    /* statistics */
    uint64_t resets, poweroffs;
} I8042State;

/* What the i8042 saves (section I8042_STATE_MAGIC, i8042_state_section). */
typedef struct I8042StateData {
    uint8_t cmd_byte;
    uint8_t pending; /* 0, 0x60, 0xd1, 0xd2 or 0xd3 */
    uint8_t out;
    uint8_t out_full; /* 0 or 1 */
    uint8_t sleep_status;
} I8042StateData;

/* Its section: magic, version and field table. */
extern const StateSection i8042_state_section;

/* Initialises the device and its regions "i8042-data", "i8042-cmd" and
 * "acpi-sleep" (the caller maps them).  0 or a negative errno. */
int i8042_init(I8042State *s, MemoryContext *ctx, PowerEventFn fn, void *opaque);
/* Destroys the regions (they must be unmapped) and the lock. */
void i8042_destroy(I8042State *s);
/* Power-on state. */
void i8042_reset(I8042State *s);
/* The regions to map at 0x60, 0x64 and the sleep port. */
MemoryRegion *i8042_data_region(I8042State *s);
/* See i8042_data_region. */
MemoryRegion *i8042_cmd_region(I8042State *s);
/* See i8042_data_region. */
MemoryRegion *i8042_sleep_region(I8042State *s);
/* Appends the guest-visible state as one versioned section; 0 or -ENOMEM. */
int i8042_save(I8042State *s, uint8_t **buf, size_t *len);
/* Replaces the state with one saved section; -EINVAL with err set (state
 * unchanged) on a bad stream. */
int i8042_load(I8042State *s, const uint8_t *buf, size_t len, char *err, size_t errlen);

/* Reset, save, load and destroy for a board's device list (devices/device.h). */
extern const DeviceOps i8042_device_ops;

#endif /* STRATA_DEVICES_I8042_H */
