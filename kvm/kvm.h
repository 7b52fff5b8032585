/* SPDX-License-Identifier: MIT */
/*
 * strata KVM backend.
 *
 * A KvmVm owns the /dev/kvm fd, the VM fd, the memory listeners that turn
 * the caller's two address spaces (`memory` and `I/O`) into KVM memory
 * slots, coalesced-MMIO zones and ioeventfds, the in-kernel irqchip/PIT (if
 * asked for), the irqfds behind interrupt lines, and its vCPUs with their
 * threads.
 *
 * Typical use:
 *     KvmVmConfig cfg = KVM_VM_CONFIG_DEFAULT;
 *     KvmVm *vm;  KvmVcpu *cpu;  KvmVmEnd end;
 *     if (kvm_vm_create(&cfg, &vm) < 0) ...
 *     kvm_vm_attach_memory(vm, ctx, memory_as, io_as);   // caller builds the tree
 *     kvm_vcpu_create(vm, 0, &cpu);
 *     kvm_vcpu_init_cpuid(cpu);
 *     kvm_vcpu_setup_pvh(cpu, entry, start_info);         // or set regs/sregs
 *     kvm_vm_start(vm);
 *     kvm_vm_wait(vm, &end);                              // "hlt", ...
 *     kvm_vm_destroy(vm);
 *
 * Threading: kvm_vm_create/attach_memory/destroy, kvm_vcpu_create and the
 * memory listeners run on the VMM's main thread (the one that mutates the
 * region tree).  kvm_vm_pause/resume/request_end may be called from any
 * thread, including a vCPU thread (from a device callback).  Guest exits are
 * dispatched on the vCPU's thread through address_space_read/write.
 *
 * Errors: functions that can fail return 0 (or a count) on success and a
 * negative errno on failure, after printing one line to stderr naming the
 * thing that failed ("KVM_CAP_IOEVENTFD: not supported by /dev/kvm").
 * Listener callbacks cannot return errors: they print them, count them and
 * leave the text in kvm_vm_last_error().
 */
#ifndef STRATA_KVM_H
#define STRATA_KVM_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "memory/memory.h"
#include "memory/irq-line.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct KvmVm KvmVm;
typedef struct KvmVcpu KvmVcpu;

/* ---- Probing ---------------------------------------------------------- */

/*
 * NULL if /dev/kvm can run strata guests (opens, API version 12, every
 * required capability present); otherwise a human-readable reason such as
 * "/dev/kvm: No such file or directory" or "KVM_CAP_IRQFD: not supported by
 * /dev/kvm".  The string is static / thread-local; tests use it to skip.
 * Prints nothing.
 */
const char *kvm_probe(void);

/* ---- VM --------------------------------------------------------------- */

typedef struct KvmVmConfig {
    const char *dev_path;  /* NULL = "/dev/kvm" */
    bool irqchip;          /* KVM_CREATE_IRQCHIP (PIC + IOAPIC + LAPICs) */
    bool pit;              /* KVM_CREATE_PIT2 (requires irqchip) */
    bool manual_dirty_log; /* use KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 if offered */
    unsigned max_slots;    /* 0 = KVM_CAP_NR_MEMSLOTS; else min(this, cap) (tests) */
    bool verbose;          /* dump registers on SHUTDOWN too, log exits */
    unsigned dirty_ring;   /* entries per vCPU ring (a power of two), KVM_DIRTY_RING_OFF
                            * (the bitmap) or KVM_DIRTY_RING_AUTO (the ring of
                            * KVM_DIRTY_RING_DEFAULT entries where the host has it) */
    bool cpuid_prefetch;   /* fetch KVM_GET_SUPPORTED_CPUID on a thread at once, for the
                            * first kvm_vm_get_supported_cpuid (off: a VM whose vCPUs
                            * take their CPUID from a saved state may never ask) */
} KvmVmConfig;

#define KVM_DIRTY_RING_OFF 0u
#define KVM_DIRTY_RING_AUTO 0xffffffffu
#define KVM_DIRTY_RING_DEFAULT 4096u /* entries (64 KiB per vCPU) */
#define KVM_DIRTY_RING_MIN 256u      /* entries: the kernel wants a page at least */
#define KVM_DIRTY_RING_MAX 65536u    /* entries: the kernel's KVM_DIRTY_RING_MAX_ENTRIES */

/* Defaults: no irqchip, no PIT, manual dirty-log protect on, all slots,
 * the dirty ring where the host offers it, the CPUID prefetch. */
#define KVM_VM_CONFIG_DEFAULT \
    ((KvmVmConfig){ .dev_path = NULL, \
                    .irqchip = false, \
                    .pit = false, \
                    .manual_dirty_log = true, \
                    .max_slots = 0, \
                    .verbose = false, \
                    .dirty_ring = KVM_DIRTY_RING_AUTO, \
                    .cpuid_prefetch = true })

/* Opens /dev/kvm, checks API version and capabilities, creates the VM (and
 * the irqchip/PIT if asked).  *out is set only on success. */
int kvm_vm_create(const KvmVmConfig *cfg, KvmVm **out);

/*
 * Ends the VM if running (request_end + joins the vCPU threads), unregisters
 * the listeners (KVM slots are dropped with the VM fd), closes every fd and
 * frees everything.  The MemoryContext and address spaces stay the caller's
 * and must outlive this call.  NULL is a no-op.
 */
void kvm_vm_destroy(KvmVm *vm);

/*
 * Registers the backend's listeners on memory_as (slots, MMIO ioeventfds,
 * coalesced MMIO) and io_as (PIO ioeventfds, coalesced PIO; may be NULL:
 * then every PIO exit reads all-ones / drops writes).  The current state is
 * mapped at once.  Call once, before any vCPU runs.
 */
int kvm_vm_attach_memory(KvmVm *vm, MemoryContext *ctx, AddressSpace *memory_as,
                         AddressSpace *io_as);

/* The VM fd (for ioctls this API does not wrap); owned by the VM. */
int kvm_vm_fd(const KvmVm *vm);
/* The /dev/kvm fd (system ioctls); owned by the VM. */
int kvm_vm_kvm_fd(const KvmVm *vm);

/* KVM_CHECK_EXTENSION on the VM fd: >0 if supported (value), 0 if not. */
int kvm_vm_check_extension(const KvmVm *vm, long cap);

/*
 * Called first on each vCPU thread kvm_vm_start creates, before its first
 * KVM_RUN (the VMM installs the thread's seccomp filter there), and on the
 * throttle's thread with vcpu NULL (it needs what a vCPU thread needs to
 * signal and sleep; see kvm_vm_set_throttle).  A negative
 * return ends the VM with KVM_END_ERROR before the vCPU runs.  Set before
 * kvm_vm_start; NULL = none.
 */
typedef int (*KvmThreadHook)(void *opaque, KvmVcpu *vcpu);
/* Sets the vCPU thread-start hook (see KvmThreadHook). */
void kvm_vm_set_thread_hook(KvmVm *vm, KvmThreadHook fn, void *opaque);

/* Text of the last error recorded by the VM or its listeners ("" if none). */
const char *kvm_vm_last_error(const KvmVm *vm);

/* ---- Slots, statistics ------------------------------------------------ */

typedef struct KvmSlotInfo {
    uint32_t slot;  /* KVM slot number */
    uint64_t gpa;   /* guest physical address */
    uint64_t size;  /* bytes */
    uint64_t hva;   /* host virtual address */
    uint32_t flags; /* KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_READONLY */
    char name[64];  /* region name (truncated) */
} KvmSlotInfo;

/* Fills up to max entries sorted by gpa; returns the number of slots in use
 * (which may exceed max).  Call on the thread that commits memory changes. */
size_t kvm_vm_get_slots(KvmVm *vm, KvmSlotInfo *out, size_t max);

/* Number of KVM_SET_USER_MEMORY_REGION ioctls issued so far. */
uint64_t kvm_vm_slot_ioctl_count(const KvmVm *vm);

/* Slot capacity in use by the listener (KVM_CAP_NR_MEMSLOTS or max_slots). */
unsigned kvm_vm_max_slots(const KvmVm *vm);

typedef struct KvmVmStats {
    uint64_t slot_ioctls;             /* KVM_SET_USER_MEMORY_REGION issued */
    uint64_t slots_used;              /* slots mapped now */
    uint64_t slot_pauses;             /* commits that paused the vCPUs */
    uint64_t unaligned_sections;      /* RAM sections left unmapped (not page aligned) */
    uint64_t coalesced_zones;         /* zones registered now (MMIO + PIO) */
    uint64_t coalesced_drained;       /* ring entries delivered */
    uint64_t ioeventfds;              /* ioeventfds assigned now */
    uint64_t irqfds;                  /* irqfds assigned now */
    uint64_t errors;                  /* listener / ioctl errors recorded */
    uint64_t exits_io;                /* KVM_EXIT_IO handled */
    uint64_t exits_mmio;              /* KVM_EXIT_MMIO handled */
    uint64_t exits_other;             /* every other exit (incl. EINTR) */
    uint64_t dirty_syncs;             /* dirty-log syncs (log_sync, kvm_vm_dirty_log_sync) */
    uint64_t dirty_sync_ns;           /* their total time (CLOCK_MONOTONIC) */
    uint64_t dirty_pages;             /* pages the dirty log (bitmap or ring) reported */
    uint64_t dirty_ring_full;         /* KVM_EXIT_DIRTY_RING_FULL handled */
    uint64_t dirty_ring_full_ns;      /* their harvests' total time (on the vCPUs) */
    uint64_t dirty_ring_resets;       /* KVM_RESET_DIRTY_RINGS issued */
    uint64_t dirty_ring_short_resets; /* ... that reset fewer entries than were harvested */
} KvmVmStats;

/* A snapshot of the counters. */
void kvm_vm_get_stats(KvmVm *vm, KvmVmStats *out);

/* ---- Dirty log --------------------------------------------------------- */

/* Entries per vCPU of the dirty ring in use, 0 if the dirty log is the
 * per-slot bitmap (KVM_GET_DIRTY_LOG).  Fixed when the VM is created. */
unsigned kvm_vm_dirty_ring_size(const KvmVm *vm);

/* Pulls the whole dirty log (every vCPU's ring, or every logging slot's
 * bitmap) into the regions' bitmaps, as the listener's log_sync does;
 * returns the pages it reported.  Main thread (it reads the slot table). */
uint64_t kvm_vm_dirty_log_sync(KvmVm *vm);

/* Makes every writable RAM slot log dirty pages (on) whether or not a
 * memory client logs its region (a dirty-rate measurement), or goes back
 * to the clients' choice (off).  Main thread. */
void kvm_vm_set_dirty_log_all(KvmVm *vm, bool on);

/* Pages vcpu's dirty ring reported so far (0 without the ring). */
uint64_t kvm_vcpu_dirty_pages(const KvmVcpu *vcpu);

/* Delivers every pending coalesced MMIO/PIO write, in guest order, through
 * the address spaces.  Called automatically before each exit dispatch and at
 * each listener commit. */
void kvm_vm_flush_coalesced(KvmVm *vm);

/* ---- Interrupts -------------------------------------------------------- */

/* True if the VM has an in-kernel irqchip (configured: KVM creates it when
 * guest RAM is attached, or first needed; see kvm_vm_realize_irqchip). */
bool kvm_vm_has_irqchip(const KvmVm *vm);

/* Creates the configured in-kernel irqchip and PIT now if not made yet
 * (idempotent).  kvm_vm_attach_memory, the first vCPU, irqfds, lines and
 * the VM state calls do it themselves; 0 or -errno. */
int kvm_vm_realize_irqchip(KvmVm *vm);

/*
 * Fills *line with a device-facing handle for `gsi`: set() calls
 * KVM_IRQ_LINE, eventfd() lazily creates an eventfd bound to the GSI with
 * an irqfd (owned and closed by the VM), level_eventfd() lazily creates a
 * resampling irqfd (KVM_IRQFD_FLAG_RESAMPLE) and its resample eventfd (both
 * owned by the VM).  Without an irqchip the line is accepted and ignored
 * (set() is a no-op, eventfd() and level_eventfd() return -1).  The line
 * is valid until kvm_vm_destroy.
 */
int kvm_vm_irq_line(KvmVm *vm, unsigned gsi, IrqLine *line);

/* ---- vCPUs ------------------------------------------------------------ */

/* Creates vCPU `index` (KVM_CREATE_VCPU, mmaps kvm_run, maps the coalesced
 * ring).  Indices must be unique and < KVM_CAP_MAX_VCPUS. */
int kvm_vcpu_create(KvmVm *vm, unsigned index, KvmVcpu **out);

/* vCPU `index`, or NULL. */
KvmVcpu *kvm_vm_vcpu(const KvmVm *vm, unsigned index);

/* Number of vCPUs created. */
unsigned kvm_vm_nr_vcpus(const KvmVm *vm);

/* The index the vCPU was created with (its APIC id). */
unsigned kvm_vcpu_index(const KvmVcpu *vcpu);
/* The vCPU fd (for ioctls this API does not wrap); owned by the VM. */
int kvm_vcpu_fd(const KvmVcpu *vcpu);
/* The vCPU's mmap()ed struct kvm_run (valid until kvm_vm_destroy). */
struct kvm_run *kvm_vcpu_run_struct(KvmVcpu *vcpu);

/* Kernel thread id of the vCPU's thread once kvm_vm_start returned, else 0. */
int kvm_vcpu_thread_id(const KvmVcpu *vcpu);

/* Why KVM_RUN returned, as counted per vCPU (KvmVcpuExitStats). */
typedef enum KvmExitKind {
    KVM_EXITS_IO = 0,          /* KVM_EXIT_IO */
    KVM_EXITS_MMIO,            /* KVM_EXIT_MMIO */
    KVM_EXITS_HLT,             /* KVM_EXIT_HLT */
    KVM_EXITS_SHUTDOWN,        /* KVM_EXIT_SHUTDOWN (triple fault) */
    KVM_EXITS_SYSTEM_EVENT,    /* KVM_EXIT_SYSTEM_EVENT */
    KVM_EXITS_IRQ_WINDOW,      /* KVM_EXIT_IRQ_WINDOW_OPEN */
    KVM_EXITS_INTR,            /* KVM_EXIT_INTR, or KVM_RUN failed with EINTR/EAGAIN (a kick) */
    KVM_EXITS_INTERNAL_ERROR,  /* KVM_EXIT_INTERNAL_ERROR */
    KVM_EXITS_FAIL_ENTRY,      /* KVM_EXIT_FAIL_ENTRY */
    KVM_EXITS_DIRTY_RING_FULL, /* KVM_EXIT_DIRTY_RING_FULL (harvested, then on) */
    KVM_EXITS_OTHER,           /* any other exit reason */
    KVM_EXITS_NR
} KvmExitKind;

/* Returns from KVM_RUN by reason, and the throttle's sleeps, since the vCPU
 * was created.  Counted by the vCPU's own thread with plain (relaxed,
 * unlocked) stores. */
typedef struct KvmVcpuExitStats {
    uint64_t exits[KVM_EXITS_NR];
    uint64_t throttle_sleeps; /* sleeps of kvm_vm_set_throttle's share */
    uint64_t throttled_ns;    /* their total length (CLOCK_MONOTONIC) */
} KvmVcpuExitStats;

/* The short name of an exit kind ("io", "mmio", "hlt", ...), or "?". */
const char *kvm_exit_kind_name(KvmExitKind k);
/* A snapshot of vcpu's exit counters (any thread; each counter is read
 * atomically, the set is not one instant). */
void kvm_vcpu_get_exit_stats(const KvmVcpu *vcpu, KvmVcpuExitStats *out);

/* Owning VM. */
KvmVm *kvm_vcpu_vm(const KvmVcpu *vcpu);

/* Reads the general registers (KVM_GET_REGS). */
int kvm_vcpu_get_regs(KvmVcpu *vcpu, struct kvm_regs *regs);
/* Writes the general registers (KVM_SET_REGS). */
int kvm_vcpu_set_regs(KvmVcpu *vcpu, const struct kvm_regs *regs);
/* Reads segments, control registers, EFER, ... (KVM_GET_SREGS). */
int kvm_vcpu_get_sregs(KvmVcpu *vcpu, struct kvm_sregs *sregs);
/* Writes segments, control registers, EFER, ... (KVM_SET_SREGS). */
int kvm_vcpu_set_sregs(KvmVcpu *vcpu, const struct kvm_sregs *sregs);

/* Reads one MSR (KVM_GET_MSRS with one entry). */
int kvm_vcpu_get_msr(KvmVcpu *vcpu, uint32_t index, uint64_t *value);
/* Writes one MSR (KVM_SET_MSRS with one entry). */
int kvm_vcpu_set_msr(KvmVcpu *vcpu, uint32_t index, uint64_t value);

/* KVM_GET_SUPPORTED_CPUID; returns a malloc()ed table (free() it). */
int kvm_vm_get_supported_cpuid(KvmVm *vm, struct kvm_cpuid2 **out);

/* KVM_SET_CPUID2 with the given table. */
int kvm_vcpu_set_cpuid(KvmVcpu *vcpu, const struct kvm_cpuid2 *cpuid);

/* Sets the supported CPUID (APIC ids = vCPU index, hypervisor bit set).
 * Must run before the guest enables long mode. */
int kvm_vcpu_init_cpuid(KvmVcpu *vcpu);

/*
 * Puts the vCPU in the PVH entry state: 32-bit protected mode, paging off,
 * flat 4 GiB code (0x10) / data (0x18) segments, TR set to a 32-bit busy
 * TSS of limit 0x67 at base 0, rip = entry, rbx = start_info, rflags = 2,
 * everything else zero.
 */
int kvm_vcpu_setup_pvh(KvmVcpu *vcpu, uint64_t entry, uint64_t start_info);

/*
 * Translates a guest virtual (linear) address through the vCPU's current
 * page tables (none / 32-bit / PAE / 4- and 5-level) reading guest memory
 * through the memory AS.  -EFAULT if not mapped; prints nothing (it is used
 * while printing error reports).
 */
int kvm_vcpu_translate(KvmVcpu *vcpu, uint64_t gva, uint64_t *gpa);

/* Prints the registers and the bytes at CS:RIP to f. */
void kvm_vcpu_dump(KvmVcpu *vcpu, FILE *f);

/* ---- Running ----------------------------------------------------------- */

/* Why a VM (or a synchronous run) ended. */
typedef enum KvmEndReason {
    KVM_END_NONE = 0,        /* still running / not started */
    KVM_END_HLT,             /* "hlt" (HLT exit, no in-kernel irqchip) */
    KVM_END_SHUTDOWN,        /* "shutdown (triple fault)" */
    KVM_END_SYSTEM_RESET,    /* "system event reset" */
    KVM_END_SYSTEM_SHUTDOWN, /* "system event shutdown" */
    KVM_END_REQUESTED,       /* "requested" (kvm_vm_request_end, with a code) */
    KVM_END_ERROR,           /* "error" (FAIL_ENTRY, INTERNAL_ERROR, unknown
                                 * exit, failed ioctl; text says which) */
} KvmEndReason;

typedef struct KvmVmEnd {
    KvmEndReason reason;
    int vcpu;       /* vCPU that ended it, -1 if none */
    int code;       /* kvm_vm_request_end's code; else 0 */
    char text[256]; /* e.g. "hlt", "internal error: suberror 1 ..." */
} KvmVmEnd;

/* The fixed text of a reason: "hlt", "shutdown (triple fault)", ... */
const char *kvm_end_reason_str(KvmEndReason reason);

/* Starts a thread per created vCPU running the run loop; -EALREADY if the
 * VM was started already. */
int kvm_vm_start(KvmVm *vm);

/* Blocks until the VM ended, joins the vCPU threads and returns the reason
 * (also in *out when not NULL).  KVM_END_NONE at once if the VM was neither
 * started nor ended. */
KvmEndReason kvm_vm_wait(KvmVm *vm, KvmVmEnd *out);

/* True once the VM has ended (never blocks). */
bool kvm_vm_ended(const KvmVm *vm);

/* Ends the VM from any thread (first reason wins): every vCPU leaves
 * KVM_RUN and its thread exits. */
void kvm_vm_request_end(KvmVm *vm, KvmEndReason reason, int code, const char *text);

/*
 * Pauses every vCPU: returns once each one is out of KVM_RUN and parked (or
 * is the calling thread).  Nests: each
 * pause needs a resume.  Works before start and after the end too (then
 * nothing runs); returns 0.
 */
int kvm_vm_pause(KvmVm *vm);

/* Undoes one kvm_vm_pause; the last one lets the vCPUs run again. */
void kvm_vm_resume(KvmVm *vm);

/* True while at least one pause is in effect. */
bool kvm_vm_paused(const KvmVm *vm);

/*
 * Synchronous: runs the vCPU on the calling thread, dispatching IO/MMIO,
 * until HLT, SHUTDOWN, SYSTEM_EVENT, an error, or the VM was ended by
 * kvm_vm_request_end; fills *out (may be NULL) and returns the reason.  It
 * never marks the VM ended itself, so it can be called again (after HLT).
 */
KvmEndReason kvm_vcpu_run_until_exit(KvmVcpu *vcpu, KvmVmEnd *out);

/*
 * Throttling: slows every vCPU thread (kvm_vm_start's) down by making it
 * sleep pct percent of the time, in periods of about KVM_THROTTLE_PERIOD_MS
 * (30: it runs 7 ms, then sleeps 3 ms).  0 (the default) lets the vCPUs
 * run at full speed; values over KVM_THROTTLE_MAX are taken as
 * KVM_THROTTLE_MAX.  Any thread; takes effect within a period.  While
 * pct > 0 a thread kvm_vm_start made (it runs the thread hook first,
 * with vcpu NULL) kicks the vCPUs out of KVM_RUN every tenth of a period;
 * a vCPU that has run at least its share of a period sleeps in proportion
 * to what it ran (so at 99% it runs about one kick interval, then sleeps
 * about 100 times that, at most 100 periods).  With pct 0 the ticker
 * waits and the run loop pays one relaxed load.  Lowering the percentage
 * wakes sleeping vCPUs.  A
 * sleeping vCPU still pauses and ends at once.  Synchronous runs
 * (kvm_vcpu_run_until_exit) are not throttled.
 */
#define KVM_THROTTLE_PERIOD_MS 10u
#define KVM_THROTTLE_MAX 99u
void kvm_vm_set_throttle(KvmVm *vm, unsigned pct);
/* The percentage kvm_vm_set_throttle set last (0: not throttled). */
unsigned kvm_vm_throttle(const KvmVm *vm);

/*
 * Dirty limit (QEMU's dirty-limit): every period_ms (1..1000) the throttle's
 * ticker harvests the dirty rings and measures each vCPU's dirty rate (its
 * own ring's pages); a vCPU dirtying faster than mbps MB/s gets a throttle
 * of its own (the share kvm_vm_set_throttle gives all), raised or lowered
 * in proportion each period; a vCPU at or under the limit is not slowed
 * (nor kicked).  The larger of the two throttles applies.  mbps 0 turns it
 * off (every vCPU at full speed again).  -ENOTSUP without the dirty ring.
 * Any thread.
 */
int kvm_vm_set_dirty_limit(KvmVm *vm, unsigned mbps, unsigned period_ms);
/* The limit in force (0: none). */
unsigned kvm_vm_dirty_limit(const KvmVm *vm);
/* A vCPU's dirty-limit throttle (percent) and its dirty rate (MB/s) at the
 * last period (both 0 without the limit). */
unsigned kvm_vcpu_dirty_limit_pct(const KvmVcpu *vcpu);
uint64_t kvm_vcpu_dirty_rate(const KvmVcpu *vcpu);

/* The real-time signal used to kick vCPU threads out of KVM_RUN. */
int kvm_kick_signal(void);

#ifdef __cplusplus
}
#endif
#endif /* STRATA_KVM_H */
