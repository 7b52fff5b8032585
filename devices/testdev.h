/* SPDX-License-Identifier: MIT */
/*
 * The strata test device (ports in devices/testdev-ports.h): lets the tiny
 * guests of the test kit run under `strata run --test-device`.
 *   REPORT: values are kept (the last TESTDEV_KEEP_REPORTS) and counted;
 *   PUTC:   console characters, printed a line at a time with "guest: ";
 *   EXIT:   the guest is done: the exit callback gets the code (once);
 *   SYNC:   latches 0 (strata has no sync handler); reads return it.
 * Reads of the other ports return TESTDEV_MAGIC.  Thread safe.
 */
#ifndef STRATA_DEVICES_TESTDEV_H
#define STRATA_DEVICES_TESTDEV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "devices/device.h"
#include "devices/testdev-ports.h"
#include "memory/memory.h"
#include "memory/state-table.h"

#define TESTDEV_KEEP_REPORTS 64
#define TESTDEV_STATE_MAGIC 0x56445354u /* "TSDV" */
#define TESTDEV_STATE_VERSION 1

typedef void (*TestDevExitFn)(void *opaque, uint32_t code);

typedef struct TestDev {
    MemoryRegion io; /* "strata-testdev" */
    bool io_initialized;
    pthread_mutex_t lock;
    TestDevExitFn exit_fn;
    void *exit_opaque;
    FILE *console; /* where PUTC lines go (stderr) */
    uint32_t reports[TESTDEV_KEEP_REPORTS];
    uint64_t nr_reports; /* total ever reported */
    bool exited;
    uint32_t exit_code;
    uint32_t sync_answer;
    uint64_t sync_count;
    char line[256];
    unsigned line_len;
} TestDev;

/* What the test device saves (section TESTDEV_STATE_MAGIC,
 * testdev_state_section); the partial console line is not state. */
typedef struct TestDevStateData {
    uint64_t nr_reports;
    uint32_t reports[TESTDEV_KEEP_REPORTS];
    uint8_t exited; /* 0 or 1 */
    uint32_t exit_code;
    uint32_t sync_answer;
    uint64_t sync_count;
} TestDevStateData;

/* Its section: magic, version and field table. */
extern const StateSection testdev_state_section;

/* Initialises d and its I/O region (TESTDEV_PORT_SIZE bytes, to be mapped
 * at TESTDEV_PORT_BASE).  console may be NULL (stderr). */
int testdev_init(TestDev *d, MemoryContext *ctx, TestDevExitFn fn, void *opaque, FILE *console);
/* Destroys the region (it must be unmapped). */
void testdev_destroy(TestDev *d);
/* Forgets reports, exit status and the partial console line. */
void testdev_reset(TestDev *d);
/* The region to map in the I/O address space. */
MemoryRegion *testdev_region(TestDev *d);
/* Saves / loads the device state as one versioned section (see serial.h). */
int testdev_save(TestDev *d, uint8_t **buf, size_t *len);
int testdev_load(TestDev *d, const uint8_t *buf, size_t len, char *err, size_t errlen);

/* Reset, save, load and destroy for a board's device list (devices/device.h). */
extern const DeviceOps testdev_device_ops;

#endif /* STRATA_DEVICES_TESTDEV_H */
