/* SPDX-License-Identifier: MIT */
/*
 * A 16550A UART (8 byte-wide registers, usually at PIO 0x3f8, IRQ 4).
 *
 * Transmission is instantaneous: a byte written to THR goes to the output
 * file descriptor at once (or is dropped when there is none) and THR/TEMT
 * stay empty.  Received bytes (serial_receive) go through the 16-byte FIFO
 * (1 byte without FIFO mode).  Loopback (MCR bit 4) feeds THR back to RBR.
 * The interrupt line follows IIR (asserted while an enabled interrupt is
 * pending).  All entry points are thread safe: guest accesses come from a
 * vCPU thread, receive/save/load/reset from the main loop.
 */
#ifndef STRATA_DEVICES_SERIAL_H
#define STRATA_DEVICES_SERIAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/device.h"
#include "memory/irq-line.h"
#include "memory/memory.h"
#include "memory/state-table.h"

#define SERIAL_IO_SIZE 8
#define SERIAL_FIFO_SIZE 16
#define SERIAL_STATE_MAGIC 0x54524155u /* "UART" */
#define SERIAL_STATE_VERSION 1

typedef struct SerialState {
    MemoryRegion io; /* "serial", SERIAL_IO_SIZE bytes of I/O */
    bool io_initialized;
    pthread_mutex_t lock;
    IrqLine irq;
    int out_fd;    /* -1: output dropped */
    int irq_level; /* last level driven on irq */

    /* guest-visible state (what save/load carry) */
    uint16_t divider;
    uint8_t ier, lcr, mcr, lsr, msr, scr, fcr;
    bool thr_ipending; /* THR-empty interrupt pending */
    uint8_t rx_fifo[SERIAL_FIFO_SIZE];
    unsigned rx_head, rx_count;

    /* statistics (not saved) */
    uint64_t tx_bytes, rx_bytes, rx_dropped;
} SerialState;

/* What the UART saves (section SERIAL_STATE_MAGIC, serial_state_section):
 * the registers and the receive FIFO's bytes, oldest first. */
typedef struct SerialStateData {
    uint16_t divider;
    uint8_t ier, lcr, mcr, lsr, msr, scr, fcr;
    uint8_t thr_ipending; /* 0 or 1 */
    uint8_t rx_count;     /* bytes in rx_fifo */
    uint8_t rx_fifo[SERIAL_FIFO_SIZE];
} SerialStateData;

/* Its section: magic, version and field table. */
extern const StateSection serial_state_section;

/*
 * Initialises s with reset state and its I/O region named "serial"
 * (map it with memory_region_add_subregion).  out_fd (not owned) receives
 * transmitted bytes; irq may be NULL (no interrupt).  0 or a negative errno.
 */
int serial_init(SerialState *s, MemoryContext *ctx, int out_fd, const IrqLine *irq);
/* Destroys the region (it must be unmapped) and the lock. */
void serial_destroy(SerialState *s);
/* Puts the registers in their power-on state (FIFO emptied). */
void serial_reset(SerialState *s);
/* The region to map in the I/O address space. */
MemoryRegion *serial_region(SerialState *s);
/* Offers n received bytes; returns how many fit into the receive FIFO. */
size_t serial_receive(SerialState *s, const uint8_t *buf, size_t n);
/* Free space in the receive FIFO. */
size_t serial_can_receive(SerialState *s);

/* Appends the guest-visible state as one versioned section; 0 or -ENOMEM. */
int serial_save(SerialState *s, uint8_t **buf, size_t *len);
/*
 * Replaces the state with the one in [buf, buf+len) (exactly one section,
 * nothing after it).  Truncated, corrupt or inconsistent streams are
 * rejected with -EINVAL/-ENODATA and a reason in err, leaving s unchanged.
 */
int serial_load(SerialState *s, const uint8_t *buf, size_t len, char *err, size_t errlen);

/* Reset, save, load and destroy for a board's device list (devices/device.h). */
extern const DeviceOps serial_device_ops;

#endif /* STRATA_DEVICES_SERIAL_H */
