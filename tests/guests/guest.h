/* SPDX-License-Identifier: MIT */
/*
 * Guest-side API of the tiny-guest kit.  Included by freestanding guest code
 * (built by strata_add_guest(), see CMakeLists.txt).  The entry stub
 * (entry.S) takes the CPU from the PVH entry state to 64-bit mode, then calls
 *   - guest_kernel_main() at CPL0, if the guest defines it (optional), then
 *   - guest_main() at CPL3 with IOPL 3 and every I/O port open in the TSS;
 * guest_main's return value is written to the EXIT port.  Memory below
 * 4 GiB is identity mapped, user-accessible, read/write.  There is no IDT:
 * any exception is a triple fault (KVM_EXIT_SHUTDOWN).
 *
 * SMP: guest_main() may start the other vCPUs with guest_start_aps(); each
 * then runs the guest's guest_ap_main(cpu) at CPL3 the same way (see below).
 */
#ifndef STRATA_GUEST_H
#define STRATA_GUEST_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>
#include "devices/testdev-ports.h"

/* Where the kit loads guests: the link address of every guest ELF (link.ld). */
#define GUEST_LOAD_ADDR 0x100000u
/* Guest virtual == guest physical below this (2 MiB pages, user-accessible). */
#define GUEST_IDENTITY_LIMIT 0x100000000ull

/* The test's code at CPL3; returns the exit code (0 = pass). */
int guest_main(void);
/* Optional: runs at CPL0 before guest_main (emulated, slow, on PVM). */
void guest_kernel_main(void);

static inline void outb(uint16_t port, uint8_t v)
{
    __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port) : "memory");
}
static inline void outw(uint16_t port, uint16_t v)
{
    __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port) : "memory");
}
static inline void outl(uint16_t port, uint32_t v)
{
    __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port) : "memory");
}
static inline uint8_t inb(uint16_t port)
{
    uint8_t v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port) : "memory");
    return v;
}
static inline uint16_t inw(uint16_t port)
{
    uint16_t v;
    __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port) : "memory");
    return v;
}
static inline uint32_t inl(uint16_t port)
{
    uint32_t v;
    __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port) : "memory");
    return v;
}

/* Single guest-physical accesses of an exact width (identity mapped). */
static inline void mmio_write8(uint64_t a, uint8_t v)
{
    *(volatile uint8_t *)a = v;
}
static inline void mmio_write16(uint64_t a, uint16_t v)
{
    *(volatile uint16_t *)a = v;
}
static inline void mmio_write32(uint64_t a, uint32_t v)
{
    *(volatile uint32_t *)a = v;
}
static inline void mmio_write64(uint64_t a, uint64_t v)
{
    *(volatile uint64_t *)a = v;
}
static inline uint8_t mmio_read8(uint64_t a)
{
    return *(volatile uint8_t *)a;
}
static inline uint16_t mmio_read16(uint64_t a)
{
    return *(volatile uint16_t *)a;
}
static inline uint32_t mmio_read32(uint64_t a)
{
    return *(volatile uint32_t *)a;
}
static inline uint64_t mmio_read64(uint64_t a)
{
    return *(volatile uint64_t *)a;
}

/* Appends v to the host's report log. */
static inline void guest_report(uint32_t v)
{
    outl(TESTDEV_PORT_REPORT, v);
}

/* Ends the run with `code` (0 = pass); does not return. */
__attribute__((noreturn)) void guest_exit(uint32_t code);

/* Runs the host's sync handler for `phase` and returns its answer. */
static inline uint32_t guest_sync(uint32_t phase)
{
    outl(TESTDEV_PORT_SYNC, phase);
    return inl(TESTDEV_PORT_SYNC);
}

/* Console output through the PUTC port. */
void guest_puts(const char *s);
/* Prints an unsigned value in hex (no prefix). */
void guest_put_hex(uint64_t v);

/* Reports a failed assertion (file:line: text) and exits. */
__attribute__((noreturn)) void guest_assert_fail(const char *file, int line, const char *expr);

/* Checks a condition in guest code; a failure ends the run with
 * TESTDEV_EXIT_ASSERT after printing where. */
#define GUEST_ASSERT(cond) \
    do { \
        if (!(cond)) \
            guest_assert_fail(__FILE__, __LINE__, #cond); \
    } while (0)

/* ---- SMP ----------------------------------------------------------------
 *
 * CPU i is the vCPU whose APIC ID is i (strata and the kit number them so);
 * the BSP, which runs guest_main(), is CPU 0.
 *
 * guest_start_aps(n), called on the BSP (from guest_main, at CPL3), starts
 * CPUs 1..n-1 one after the other with INIT + SIPI and returns how many CPUs
 * run guest code, the BSP included: n when all came up, less if CPU k did
 * not check in within a few seconds (then k is returned and no CPU above k
 * is tried; k may be 1).  n is capped at GUEST_MAX_CPUS.  It needs an
 * in-kernel local APIC for every vCPU (strata run --cpus N; the kit's
 * KitOptions.ncpus), writes the real-mode trampoline to the 4 KiB page at
 * GUEST_AP_TRAMPOLINE and software-enables the BSP's local APIC.
 *
 * Each started AP goes through a short CPL0 path (emulated on PVM) to the
 * same state as the BSP: long mode, the same GDT, page tables and null IDT,
 * TR = the BSP's TSS (every port open at CPL3), IOPL 3 (which PVM keeps at
 * 0, checking ports against the TSS bitmap), IF off, CPL3, on its own
 * GUEST_AP_STACK_SIZE-byte stack, and calls guest_ap_main(cpu).
 * guest_start_aps returns only after each AP it counts entered
 * guest_ap_main, so the guest may hand work to the APs through memory from
 * then on.  When guest_ap_main returns, the AP parks: it sends itself an
 * INIT and waits for a SIPI again (its vCPU thread sleeps in KVM).  A
 * GUEST_ASSERT or guest_exit on any CPU ends the run.
 *
 * Call guest_start_aps once.  The test device's SYNC latch and console line
 * are shared: use guest_sync from one CPU at a time; guest_puts output from
 * several CPUs may interleave.
 */
#define GUEST_MAX_CPUS 16
#define GUEST_AP_STACK_SIZE 16384
#define GUEST_AP_TRAMPOLINE 0x8000u /* page-aligned, below 1 MiB: SIPI vector 8 */

/* Starts CPUs 1..ncpus-1; returns the number of CPUs now running (>= 1). */
unsigned guest_start_aps(unsigned ncpus);
/* Defined by a guest that calls guest_start_aps: runs on CPU `cpu` (>= 1)
 * at CPL3; the AP parks when it returns. */
void guest_ap_main(unsigned cpu);
/* The calling CPU's local APIC ID (an MMIO read: a VM exit). */
unsigned guest_apic_id(void);

/* Minimal freestanding libc bits the compiler may call. */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);

/* Spin for about n pause instructions. */
static inline void guest_pause_loop(uint64_t n)
{
    while (n--)
        __asm__ volatile("pause" ::: "memory");
}

#endif /* STRATA_GUEST_H */
