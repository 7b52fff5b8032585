/* SPDX-License-Identifier: MIT */
/* Private to kvm/: the structures behind KvmVm and KvmVcpu. */
#ifndef STRATA_KVM_INTERNAL_H
#define STRATA_KVM_INTERNAL_H

#include <sched.h>

#include "kvm/kvm.h"

#define KVM_PAGE_SIZE 4096u
#define KVM_SLOT_NAME 64

/* One KVM memory slot owned by the memory listener. */
typedef struct KvmSlot {
    bool used;
    uint64_t gpa, size, hva;
    uint32_t flags;
    MemoryRegion *mr;          /* terminal region the slot shows */
    uint64_t offset_in_region; /* of gpa */
    char name[KVM_SLOT_NAME];
} KvmSlot;

typedef enum { PEND_DEL, PEND_LOG, PEND_ADD } KvmPendKind;

/* A region change collected between begin and commit. */
typedef struct KvmPending {
    KvmPendKind kind;
    MemoryRegionSection s;
    int new_mask; /* PEND_LOG: new dirty mask */
} KvmPending;

typedef struct KvmZone {
    uint64_t addr, size;
    bool pio;
} KvmZone;

typedef struct KvmIoeventfd {
    uint64_t addr;
    uint32_t len;
    bool pio;
    bool match;
    uint64_t data;
    int fd;
} KvmIoeventfd;

typedef struct KvmListener {
    MemoryListener ml; /* first: callbacks get &ml */
    KvmVm *vm;
    bool is_io; /* the I/O address space */
    bool registered;
    bool in_txn; /* between begin and commit */
    KvmPending *pend;
    size_t npend, pend_cap;
    KvmZone *zones;
    size_t nzones, zones_cap;
    KvmIoeventfd *iofds;
    size_t niofds, iofds_cap;
} KvmListener;

/* Device-facing line for one GSI (IrqLine.opaque). */
typedef struct KvmIrqLineCtx {
    KvmVm *vm;
    unsigned gsi;
    int eventfd;     /* lazily created irqfd, -1 = none */
    int level_fd;    /* lazily created resampling irqfd, -1 = none */
    int resample_fd; /* its resample eventfd, -1 = none */
    struct KvmIrqLineCtx *next;
} KvmIrqLineCtx;

typedef enum {
    VCPU_IDLE = 0, /* not in the run loop */
    VCPU_RUNNING,  /* in (or about to enter) KVM_RUN, or handling an exit */
    VCPU_PARKED,   /* waiting for resume */
} KvmVcpuRunState;

struct KvmVcpu {
    KvmVm *vm;
    unsigned index;
    int fd;
    struct kvm_run *run;
    size_t mmap_size;
    pthread_t thread; /* valid while state != IDLE or threaded */
    int tid;          /* kernel thread id of its thread (atomic), 0 before */
    bool threaded;    /* has a thread from kvm_vm_start */
    /* its thread's own affinity while it starts away from the VM's starter
     * (run.c, vcpu_place_away; the vCPU's thread only) */
    bool placed_away;
    cpu_set_t affinity;
    bool joined;
    KvmVcpuRunState state; /* under vm->lock */
    /* written by the vCPU's thread only (relaxed load + store, no lock
     * prefix); read by anyone with relaxed loads */
    KvmVcpuExitStats exit_stats;
    /* Throttling (run.c), the vCPU's thread only: when it last woke from
     * a throttled sleep (CLOCK_MONOTONIC ns; 0: not throttled). */
    uint64_t throttle_start_ns;
    bool throttle_sleeping;     /* in its throttled sleep (atomic): the ticker spares it */
    uint64_t throttle_sleep_ns; /* when that sleep began (atomic; 0: not asleep) */
    /* Dirty ring (dirty-ring.c): the mmap()ed entries (NULL: no ring), the
     * next entry to look at (under vm->dirty_lock), and the pages the ring
     * reported so far (atomic). */
    struct kvm_dirty_gfn *dirty_gfns;
    uint32_t dirty_fetch;
    uint64_t dirty_pages;
    /* The dirty limit (run.c's ticker; atomics): this vCPU's throttle
     * percentage, its ring's count at the last period, its rate then;
     * limit_pct_next is the ticker's new percentage until it applies it. */
    unsigned limit_pct;
    unsigned limit_pct_next;
    uint64_t limit_pages0;
    uint64_t limit_rate; /* MB/s */
};

struct KvmVm {
    int kvm_fd, vm_fd;
    KvmVmConfig cfg;
    size_t vcpu_mmap_size;
    unsigned max_slots;
    unsigned max_vcpus;
    bool manual_dirty;               /* KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 enabled */
    unsigned dirty_ring;             /* entries per vCPU ring; 0: the bitmap (KVM_GET_DIRTY_LOG) */
    bool log_all;                    /* kvm_vm_set_dirty_log_all: every RAM slot logs */
    pthread_mutex_t dirty_lock;      /* harvests; writes of the slot table */
    struct KvmDirtyEntry *dirty_buf; /* a harvest's entries (under dirty_lock) */
    size_t dirty_buf_cap;
    bool coalesced_pio; /* KVM_CAP_COALESCED_PIO */
    bool any_length_ioeventfd;
    /* irqchip/pit: configured (lines, state and checks treat them as
     * present); made: KVM_CREATE_IRQCHIP/PIT2 done, by kvm_vm_realize_irqchip,
     * once guest RAM has its slots (see there). */
    bool irqchip, pit;
    bool irqchip_made;
    int irqchip_err; /* < 0: realizing failed (reported once) */
    pthread_mutex_t irqchip_lock;
    bool destroying;

    MemoryContext *ctx;
    AddressSpace *memory_as, *io_as;
    KvmListener mem_listener, io_listener;

    KvmSlot *slots; /* max_slots entries, index = slot id */
    unsigned slots_used;
    bool warned_unaligned;

    /* coalesced ring (shared with the kernel), mapped via the first vCPU */
    struct kvm_coalesced_mmio_ring *ring;
    unsigned ring_max;
    pthread_mutex_t ring_lock; /* recursive */
    bool ring_warned;

    KvmThreadHook thread_hook; /* run first on each vCPU thread */
    void *thread_hook_opaque;

    /* interrupt lines and their irqfds */
    pthread_mutex_t irq_lock;
    KvmIrqLineCtx *lines;

    /* vCPUs and run state (under lock) */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    KvmVcpu **vcpus;
    unsigned nvcpus, vcpus_cap;
    unsigned pause_count;
    unsigned throttle_pct; /* kvm_vm_set_throttle (atomic, relaxed) */
    unsigned dirty_limit;  /* kvm_vm_set_dirty_limit: MB/s per vCPU, 0 = off (atomic) */
    unsigned dirty_limit_period_ms;
    uint64_t dirty_limit_last_ns; /* the ticker's last period (ticker only) */
    pthread_t ticker;             /* kicks throttled vCPUs (run.c) */
    bool ticker_started;
    bool started;
    int starter_cpu; /* the core kvm_vm_start ran on (-1: unknown; run.c) */
    bool ended;
    KvmVmEnd end;

    /* errors and statistics */
    pthread_mutex_t err_lock;
    char last_error[256];
    KvmVmStats stats; /* updated with __atomic builtins */
};

#define STAT_ADD(vm, field, n) \
    __atomic_fetch_add(&(vm)->stats.field, (uint64_t)(n), __ATOMIC_RELAXED)
#define STAT_SUB(vm, field, n) \
    __atomic_fetch_sub(&(vm)->stats.field, (uint64_t)(n), __ATOMIC_RELAXED)

/* Prints "msg" to stderr, stores it as the VM's last error, counts it. */
void kvm_vm_error(KvmVm *vm, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ioctl() retried on EINTR/EAGAIN; returns the result or -errno. */
int kvm_ioctl(int fd, unsigned long req, void *arg);

/* One entry taken from a dirty ring. */
typedef struct KvmDirtyEntry {
    uint32_t slot;   /* as_id << 16 | slot id */
    uint64_t offset; /* page in the slot */
} KvmDirtyEntry;

/*
 * Takes up to max entries KVM published in a ring of `entries` (a power of
 * two) from *fetch on: each one whose flags have KVM_DIRTY_GFN_F_DIRTY
 * (acquire) is copied to out and handed back (flags = RESET, release);
 * stops at the first entry not published.  Advances *fetch; returns the
 * count.  Pure: works on any memory (unit-tested on a fake ring).
 */
size_t kvm_dirty_ring_collect(struct kvm_dirty_gfn *gfns, uint32_t entries, uint32_t *fetch,
                              KvmDirtyEntry *out, size_t max);

/* Enables the dirty ring of `want` entries (KVM_DIRTY_RING_AUTO: the
 * default size, or nothing where the host lacks it); before any vCPU. */
int kvm_dirty_ring_enable(KvmVm *vm, unsigned want);

/* Harvests the rings of every vCPU (only == NULL, counted as a sync) or of
 * `only` (a full ring): collect, KVM_RESET_DIRTY_RINGS, then set the pages
 * dirty in their regions.  Any thread; returns the pages collected. */
uint64_t kvm_dirty_ring_harvest(KvmVm *vm, KvmVcpu *only);

/* CLOCK_MONOTONIC in ns. */
uint64_t kvm_now_ns(void);

/* Memory listeners (listener.c). */
void kvm_listener_init(KvmVm *vm, KvmListener *l, bool is_io);
void kvm_listener_fini(KvmListener *l);

/* Delivers the pending coalesced writes, in guest order (run.c). */
void kvm_drain_coalesced(KvmVm *vm);

/* irq.c */
int kvm_irq_init(KvmVm *vm);
void kvm_irq_fini(KvmVm *vm);

/* vcpu.c */
void kvm_vcpu_destroy(KvmVcpu *vcpu);
void kvm_kick_init(void);
/* vcpu.c: fetches KVM_GET_SUPPORTED_CPUID of kvm_fd on a thread of its own,
 * for the next kvm_vm_get_supported_cpuid in this process (kvm_vm_create) */
void kvm_cpuid_prefetch(int kvm_fd);

/* run.c: kicks every vCPU in KVM_RUN (but the caller's own) out of it;
 * vm->lock held.  True if there was one. */
bool kvm_kick_running(KvmVm *vm);

/* throttle.c: before a vCPU thread's KVM_RUN, sleeps its throttled share
 * (the VM's or its dirty limit's). */
void kvm_throttle(KvmVcpu *v);
/* throttle.c: the ticker thread's body (arg: the KvmVm). */
void *kvm_ticker_thread(void *arg);

/* run.c: joins every vCPU thread (but the caller's own). */
void kvm_vcpu_join_all(KvmVm *vm);

#endif /* STRATA_KVM_INTERNAL_H */
