/* SPDX-License-Identifier: MIT */
/*
 * exit-latency: what the benchmark guest and its two hosts (raw KVM and
 * strata) agree on.  The guest asks for work through the test device's SYNC
 * port: PH_NEXT answers a command, PH_ARG its count, PH_END marks the end
 * of a timed loop.
 */
#ifndef STRATA_BENCH_EXIT_LATENCY_H
#define STRATA_BENCH_EXIT_LATENCY_H

#include <stdint.h>

#define BENCH_PORT 0xe0                /* PIO device, 8 ports */
#define BENCH_PORT_EVT 0xe4            /* ... ioeventfd doorbell */
#define BENCH_MMIO 0xd0000000ull       /* MMIO device, 4 KiB */
#define BENCH_MMIO_EVT 0x100ull        /* ... ioeventfd doorbell offset */
#define BENCH_DIRTY_BASE 0x40000000ull /* 1 GiB of logged RAM */
#define BENCH_DIRTY_SIZE 0x40000000ull
#define BENCH_PAGE 4096ull

enum {
    PH_NEXT = 1, /* answer: next command */
    PH_ARG = 2,  /* answer: its count; the timed loop starts */
    PH_END = 3,  /* the timed loop ended */
};

enum {
    CMD_DONE = 0,
    CMD_PIO = 1,      /* count x outl(BENCH_PORT) */
    CMD_MMIO = 2,     /* count x 4-byte write to BENCH_MMIO */
    CMD_PIO_EVT = 3,  /* count x outl(BENCH_PORT_EVT) */
    CMD_MMIO_EVT = 4, /* count x write to BENCH_MMIO + BENCH_MMIO_EVT */
    CMD_DIRTY = 5,    /* write one byte in count pages spread over the 1 GiB */
    CMD_NONE = 6,     /* empty loop (the handshake's own cost) */
};

#endif
