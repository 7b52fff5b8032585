/* SPDX-License-Identifier: MIT */
/*
 * strata device-facing interrupt interface.
 *
 * Devices include this header (never a kvm/ header): it exposes only opaque
 * callbacks, so a device works the same on the KVM backend (kvm/irq.c,
 * kvm_vm_irq_line), in a unit test (a recording IrqLine) or on any other
 * board.  It lives in memory/, the one folder both kvm/ and devices/ may
 * include, because it knows neither: libc only, no <linux/kvm.h>.
 */
#ifndef STRATA_MEMORY_IRQ_LINE_H
#define STRATA_MEMORY_IRQ_LINE_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * One interrupt line as a device sees it.  `set` drives the line level
 * (1 = asserted, 0 = deasserted); it may be called from any thread.
 * `eventfd`, if not NULL, returns a file descriptor that raises one edge
 * (assert + deassert) on the line each time 8 bytes are written to it (an
 * irqfd on KVM), or -1 if the backend cannot offer one; devices running in
 * an I/O thread may use it instead of `set`.  `level_eventfd`, if not NULL,
 * returns a resampling irqfd for a level-triggered input: a write asserts
 * the line, which stays asserted until the guest EOIs it; then the line is
 * deasserted and *resample_fd (owned by the backend, like the irqfd) becomes
 * readable, and the device must write the irqfd again if its interrupt
 * condition still holds.  It returns -1 if the backend cannot offer one.
 * A zeroed IrqLine is valid and does nothing.
 */
typedef struct IrqLine {
    void (*set)(void *opaque, int level);
    int (*eventfd)(void *opaque);
    int (*level_eventfd)(void *opaque, int *resample_fd);
    void *opaque;
} IrqLine;

/* Drives the line to `level` (no-op for an unconnected line). */
static inline void irq_line_set(const IrqLine *l, int level)
{
    if (l && l->set)
        l->set(l->opaque, level);
}

/* Asserts the line. */
static inline void irq_line_raise(const IrqLine *l)
{
    irq_line_set(l, 1);
}

/* Deasserts the line. */
static inline void irq_line_lower(const IrqLine *l)
{
    irq_line_set(l, 0);
}

/* Raises then lowers the line (an edge for edge-triggered inputs). */
static inline void irq_line_pulse(const IrqLine *l)
{
    irq_line_set(l, 1);
    irq_line_set(l, 0);
}

/* An eventfd that pulses the line when written, or -1 if none is offered. */
static inline int irq_line_eventfd(const IrqLine *l)
{
    if (l && l->eventfd)
        return l->eventfd(l->opaque);
    return -1;
}

/* A resampling irqfd for a level-triggered line and its resample eventfd
 * in *resample_fd, or -1 (and *resample_fd = -1) if none is offered. */
static inline int irq_line_level_eventfd(const IrqLine *l, int *resample_fd)
{
    *resample_fd = -1;
    if (l && l->level_eventfd)
        return l->level_eventfd(l->opaque, resample_fd);
    return -1;
}

/* True if the line is connected to something. */
static inline bool irq_line_connected(const IrqLine *l)
{
    return l && l->set;
}

#ifdef __cplusplus
}
#endif
#endif /* STRATA_MEMORY_IRQ_LINE_H */
