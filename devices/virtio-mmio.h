/* SPDX-License-Identifier: MIT */
/*
 * The virtio-mmio transport, version 2 (virtio 1.2, 4.2.2): a 0x200-byte
 * register window (registers 0x000-0x0ff, device config from 0x100), feature
 * negotiation with FEATURES_OK (VIRTIO_F_VERSION_1 required), split
 * virtqueues, InterruptStatus/ACK, ConfigGeneration.
 *
 * A device (blk, net, rng) embeds a VirtioMmio and gives it a VirtioDevOps.
 * Register accesses come from vCPU threads; queue notifications arrive on
 * per-queue ioeventfds (QueueNotify with datamatch = queue index) that the
 * device event loop handles, so queue processing never runs on a vCPU.
 * Without an event loop (unit tests), a QueueNotify write processes the
 * queue in the writer's thread.  One mutex serialises everything.
 *
 * When the driver breaks the protocol (a looping chain, a buffer outside
 * RAM, an avail index too far ahead...), the device is marked broken:
 * Status gets DEVICE_NEEDS_RESET, a config-change interrupt is raised, one
 * line naming the device and the reason is logged, and its queues are not
 * processed again until the driver resets it (writes 0 to Status).
 */
#ifndef STRATA_DEVICES_VIRTIO_MMIO_H
#define STRATA_DEVICES_VIRTIO_MMIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/device.h"
#include "devices/evloop.h"
#include "devices/virtqueue.h"
#include "memory/irq-line.h"
#include "memory/memory.h"
#include "memory/state-table.h"

#define VIRTIO_MMIO_SIZE 0x200
#define VIRTIO_MMIO_CONFIG 0x100
/* The most queues one device has (a multi-queue virtio-blk: --disk
 * num-queues, up to 16; each is one more QueueSel value, ioeventfd and
 * saved queue). */
#define VIRTIO_MMIO_MAX_QUEUES 16
#define VIRTIO_MMIO_MAGIC 0x74726976u  /* "virt" */
#define VIRTIO_MMIO_VENDOR 0x41525453u /* "STRA" */

/* Register offsets. */
enum {
    VIRTIO_MMIO_MAGIC_VALUE = 0x000,
    VIRTIO_MMIO_VERSION = 0x004,
    VIRTIO_MMIO_DEVICE_ID = 0x008,
    VIRTIO_MMIO_VENDOR_ID = 0x00c,
    VIRTIO_MMIO_DEVICE_FEATURES = 0x010,
    VIRTIO_MMIO_DEVICE_FEATURES_SEL = 0x014,
    VIRTIO_MMIO_DRIVER_FEATURES = 0x020,
    VIRTIO_MMIO_DRIVER_FEATURES_SEL = 0x024,
    VIRTIO_MMIO_QUEUE_SEL = 0x030,
    VIRTIO_MMIO_QUEUE_NUM_MAX = 0x034,
    VIRTIO_MMIO_QUEUE_NUM = 0x038,
    VIRTIO_MMIO_QUEUE_READY = 0x044,
    VIRTIO_MMIO_QUEUE_NOTIFY = 0x050,
    VIRTIO_MMIO_INTERRUPT_STATUS = 0x060,
    VIRTIO_MMIO_INTERRUPT_ACK = 0x064,
    VIRTIO_MMIO_STATUS = 0x070,
    VIRTIO_MMIO_QUEUE_DESC_LOW = 0x080,
    VIRTIO_MMIO_QUEUE_DESC_HIGH = 0x084,
    VIRTIO_MMIO_QUEUE_AVAIL_LOW = 0x090,
    VIRTIO_MMIO_QUEUE_AVAIL_HIGH = 0x094,
    VIRTIO_MMIO_QUEUE_USED_LOW = 0x0a0,
    VIRTIO_MMIO_QUEUE_USED_HIGH = 0x0a4,
    VIRTIO_MMIO_SHM_SEL = 0x0ac,
    VIRTIO_MMIO_SHM_LEN_LOW = 0x0b0,
    VIRTIO_MMIO_SHM_LEN_HIGH = 0x0b4,
    VIRTIO_MMIO_SHM_BASE_LOW = 0x0b8,
    VIRTIO_MMIO_SHM_BASE_HIGH = 0x0bc,
    VIRTIO_MMIO_CONFIG_GENERATION = 0x0fc,
};

/* Device status bits. */
#define VIRTIO_STATUS_ACKNOWLEDGE 1u
#define VIRTIO_STATUS_DRIVER 2u
#define VIRTIO_STATUS_DRIVER_OK 4u
#define VIRTIO_STATUS_FEATURES_OK 8u
#define VIRTIO_STATUS_NEEDS_RESET 0x40u
#define VIRTIO_STATUS_FAILED 0x80u

#define VIRTIO_INT_USED 1u
#define VIRTIO_INT_CONFIG 2u

#define VIRTIO_F_VERSION_1 (1ull << 32)

typedef struct VirtioMmio VirtioMmio;

/* What a queue's notification eventfd handler is given: its transport and
 * queue index. */
typedef struct VirtioMmioNotify {
    VirtioMmio *t;
    unsigned q;
} VirtioMmioNotify;

/* Per-queue notification counters: statistics, kept across device resets,
 * not migrated. */
typedef struct VirtioQueueStats {
    uint64_t kicks;      /* driver notifications received (QueueNotify) */
    uint64_t interrupts; /* used-buffer interrupts raised */
    uint64_t suppressed; /* used-buffer interrupts spared (driver's flags or used_event) */
} VirtioQueueStats;

/* A device's statistics counter: written under the transport lock (one
 * writer at a time, so a relaxed load and store, no locked instruction),
 * read by any thread with relaxed loads (virtio_stats_copy). */
static inline void virtio_stat_add(uint64_t *c, uint64_t n)
{
    __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

/* Copies n counters from src (a stats struct of uint64_t only) without a
 * lock, each read atomically. */
static inline void virtio_stats_copy(uint64_t *dst, const uint64_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

/* What a device plugs into the transport.  Callbacks run with the
 * transport lock held. */
typedef struct VirtioDevOps {
    const char *name; /* "virtio-blk" */
    uint32_t device_id;
    /* Process queue q (DRIVER_OK, not broken, q ready; rings mapped).
     * Report protocol errors with virtio_mmio_break. */
    void (*queue_notify)(VirtioMmio *t, unsigned q);
    /* Device-specific part of a reset (may be NULL). */
    void (*reset)(VirtioMmio *t);
    /* Called when the driver sets DRIVER_OK (may be NULL). */
    void (*driver_ok)(VirtioMmio *t);
    /* Device config space bytes [off, off+len) written by the guest (may be
     * NULL: read-only config). */
    void (*config_write)(VirtioMmio *t, uint32_t off, const uint8_t *buf, unsigned len);
    /* The device's whole state as one section (a struct of its own that
     * starts with VirtioMmioStateData; see virtio_mmio_save_state), and
     * its loading (virtio_mmio_load_state, then its own checks, then
     * virtio_mmio_set_state).  Called without the lock. */
    int (*save)(VirtioMmio *t, uint8_t **buf, size_t *len);
    int (*load)(VirtioMmio *t, const uint8_t *buf, size_t len, char *err, size_t errlen);
} VirtioDevOps;

/* One queue as saved. */
typedef struct VirtioQueueStateData {
    uint16_t num;
    uint8_t ready; /* 0 or 1 */
    uint64_t desc, avail, used;
    uint16_t last_avail_idx, used_idx;
} VirtioQueueStateData;

/* What the transport saves: the first member of every virtio device's
 * state struct, so the first part of its section. */
typedef struct VirtioMmioStateData {
    uint32_t status;
    uint32_t device_features_sel, driver_features_sel;
    uint64_t driver_features;
    uint32_t queue_sel;
    uint32_t interrupt_status;
    uint32_t config_generation;
    uint8_t broken;     /* 0 or 1 */
    uint8_t num_queues; /* the device's: vq[0..num_queues) */
    VirtioQueueStateData vq[VIRTIO_MMIO_MAX_QUEUES];
} VirtioMmioStateData;

/* The transport's field table: a virtio device's own table starts with
 * STATE_STRUCT(its struct, t, &virtio_mmio_state_table). */
extern const StateTable virtio_mmio_state_table;

/* The guest-visible transport state (saved as VirtioMmioStateData). */
typedef struct VirtioMmioRegs {
    uint32_t status;
    uint32_t device_features_sel, driver_features_sel;
    uint64_t driver_features;
    uint32_t queue_sel;
    uint32_t interrupt_status;
    uint32_t config_generation;
    bool broken;
    VirtQueue vq[VIRTIO_MMIO_MAX_QUEUES];
} VirtioMmioRegs;

struct VirtioMmio {
    MemoryRegion mr;
    bool mr_initialized;
    pthread_mutex_t lock;
    const VirtioDevOps *ops;
    void *dev;        /* the device embedding this transport */
    AddressSpace *as; /* guest memory */
    FlatView *fv;     /* during queue processing */
    Evloop *loop;     /* NULL: notifications processed inline */
    IrqLine irq;
    int irq_fd;          /* resampling irqfd of irq, or -1 */
    int irq_resample_fd; /* its resample eventfd (watched by loop), or -1 */
    int notify_fd[VIRTIO_MMIO_MAX_QUEUES];
    VirtioMmioNotify notify_arg[VIRTIO_MMIO_MAX_QUEUES]; /* opaque of notify_fd[q]'s handler */
    unsigned num_queues;
    uint64_t device_features; /* includes VIRTIO_F_VERSION_1 */
    uint8_t *config;          /* device config bytes (device-owned) */
    uint32_t config_len;
    char label[64]; /* "virtio-blk@0xfeb00000" for messages */
    VirtioMmioRegs r;
    uint64_t broken_count; /* statistics */
    VirtioQueueStats qstats[VIRTIO_MMIO_MAX_QUEUES];
    /* notify_fd writes of our own (after a load), not the driver's kicks */
    uint64_t injected_kicks[VIRTIO_MMIO_MAX_QUEUES];
};

/*
 * What every virtio device is created with, on a board or in a test: the
 * memory context its region lives in, the guest memory its queues address
 * and the event loop that serves its queue notifications and interrupt
 * resampling (NULL: notifications are processed inline).  The interrupt is
 * not here: whoever places the device wires it with virtio_mmio_connect_irq.
 */
typedef struct VirtioEnv {
    MemoryContext *ctx;
    AddressSpace *as;
    Evloop *loop;
} VirtioEnv;

/*
 * Sets up the transport for a device: region "virtio-mmio", queues with
 * QueueNumMax VIRTQ_MAX_SIZE, one ioeventfd per queue handled by
 * env->loop.  The device offers `features`, VIRTIO_F_VERSION_1 and the ring
 * features every queue implements (VIRTIO_F_INDIRECT_DESC,
 * VIRTIO_F_EVENT_IDX; see virtqueue.h).  No interrupt until
 * virtio_mmio_connect_irq.  0 or a negative errno.
 */
int virtio_mmio_init(VirtioMmio *t, const VirtioEnv *env, const VirtioDevOps *ops, void *dev,
                     unsigned num_queues, uint64_t features, uint8_t *config, uint32_t config_len);
/*
 * The one way a virtio device gets its interrupt, once it is placed at base
 * (which names it in messages and migration: "virtio-blk@0xfeb00000"): a
 * level-triggered line, asserted while InterruptStatus is not 0.  If the
 * device has an event loop and the line offers a resampling irqfd, it is
 * driven through that (asserted by a write, deasserted by KVM at the
 * guest's EOI, asserted again on the resample event while InterruptStatus
 * is not 0); otherwise with irq->set.  irq NULL: no line (the device is
 * only named).  Call before the guest runs.
 */
void virtio_mmio_connect_irq(VirtioMmio *t, const IrqLine *irq, uint64_t base);
/* Releases the region (it must be unmapped), eventfds and lock. */
void virtio_mmio_destroy(VirtioMmio *t);

/* Stops offering the features in `mask` (VIRTIO_F_EVENT_IDX,
 * VIRTIO_F_INDIRECT_DESC: QEMU's event_idx=off, indirect_desc=off); before
 * the guest runs.  VIRTIO_F_VERSION_1 stays. */
void virtio_mmio_withdraw_features(VirtioMmio *t, uint64_t mask);
/* The region to map in guest memory. */
MemoryRegion *virtio_mmio_region(VirtioMmio *t);
/* Device reset as if the driver wrote 0 to Status. */
void virtio_mmio_reset(VirtioMmio *t);
/* Marks the device broken (lock held): NEEDS_RESET, config interrupt, one
 * log line with reason. */
void virtio_mmio_break(VirtioMmio *t, const char *reason);
/* The device changed its config space (lock held): ConfigGeneration moves
 * on and, once DRIVER_OK, the config-change interrupt is raised. */
void virtio_mmio_config_changed(VirtioMmio *t);
/* After a batch of pushes to queue q: raises the used-buffer interrupt
 * unless the driver suppressed it (virtq_need_interrupt), counting either
 * way (lock held). */
void virtio_mmio_notify_used(VirtioMmio *t, unsigned q);
/* Queue q's notification counters (zeros for a queue the device lacks);
 * takes the lock. */
VirtioQueueStats virtio_mmio_queue_stats(VirtioMmio *t, unsigned q);
/* Maps queue q's rings for a batch; NULL if it may not run now (not ready,
 * not DRIVER_OK, broken, or the rings are bad — then it breaks). Lock held,
 * t->fv set. */
VirtQueue *virtio_mmio_queue(VirtioMmio *t, unsigned q);
/* Runs `fn` with the lock held and a FlatView taken, as the notify path
 * does (device backends use it from their own event handlers). */
void virtio_mmio_run_locked(VirtioMmio *t, void (*fn)(VirtioMmio *t, void *arg), void *arg);

/* Pops the next chain of queue q (vq from virtio_mmio_queue); 1 got one,
 * 0 empty, -1 the device broke (already reported). */
int virtio_mmio_pop(VirtioMmio *t, unsigned q, VirtQueue *vq, VirtqElem *e);

/* The device's whole state (transport + device fields) as one versioned
 * section in a malloc()ed buffer (its VirtioDevOps.save); 0 or -ENOMEM. */
int virtio_mmio_save(VirtioMmio *t, uint8_t **buf, size_t *len);
/* Replaces the state with the one in [buf, buf+len) (its VirtioDevOps.load:
 * one section, nothing after); truncated, corrupt or inconsistent streams
 * are refused with -EINVAL/-ENODATA and a reason in err, leaving the device
 * unchanged. */
int virtio_mmio_load(VirtioMmio *t, const uint8_t *buf, size_t len, char *err, size_t errlen);

/* For a device's save: fills *st (the device's state struct, whose first
 * member is VirtioMmioStateData and whose own fields the caller has set)
 * with the transport state, under the lock, and encodes it as section sec. */
int virtio_mmio_save_state(VirtioMmio *t, const StateSection *sec, void *st, uint8_t **buf,
                           size_t *len);
/* For a device's load: decodes section sec from [buf, buf+len) into *st
 * (as virtio_mmio_save_state) and checks its transport part against t
 * (queue count, features, queue sizes and alignment, flags).  0 or a
 * negative errno with err set; t is not touched. */
int virtio_mmio_load_state(VirtioMmio *t, const StateSection *sec, const uint8_t *buf, size_t len,
                           void *st, char *err, size_t errlen);
/* Installs a checked transport state (lock held by the caller). */
void virtio_mmio_set_state(VirtioMmio *t, const VirtioMmioStateData *st);
/* The same, taking the lock: for a device with no state of its own to
 * install. */
void virtio_mmio_install_state(VirtioMmio *t, const VirtioMmioStateData *st);
/* Takes/drops the transport lock. */
void virtio_mmio_lock(VirtioMmio *t);
void virtio_mmio_unlock(VirtioMmio *t);

/* The device list's reset, save and load of a virtio device go to its
 * transport (field t of TYPE); destroy is PREFIX_destroy.  Defines `const
 * DeviceOps PREFIX_device_ops` (no fixed name: each instance is named by
 * its label).  One line in the device's file. */
#define VIRTIO_DEVICE_OPS_DEFINE(prefix, type) \
    static void prefix##_dev_reset(void *d) \
    { \
        virtio_mmio_reset(&((type *)d)->t); \
    } \
    static int prefix##_dev_save(void *d, uint8_t **b, size_t *l) \
    { \
        return virtio_mmio_save(&((type *)d)->t, b, l); \
    } \
    static int prefix##_dev_load(void *d, const uint8_t *b, size_t l, char *e, size_t el) \
    { \
        return virtio_mmio_load(&((type *)d)->t, b, l, e, el); \
    } \
    static void prefix##_dev_destroy(void *d) \
    { \
        prefix##_destroy((type *)d); \
    } \
    const DeviceOps prefix##_device_ops = { \
        .reset = prefix##_dev_reset, \
        .save = prefix##_dev_save, \
        .load = prefix##_dev_load, \
        .destroy = prefix##_dev_destroy, \
    }

#endif /* STRATA_DEVICES_VIRTIO_MMIO_H */
