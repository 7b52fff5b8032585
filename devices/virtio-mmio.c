/* SPDX-License-Identifier: MIT */
/* virtio-mmio transport, version 2 (see virtio-mmio.h). */
#include "devices/virtio-mmio.h"
#include "devices/report.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define STATUS_KNOWN \
    (VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK | \
     VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED)

void virtio_mmio_lock(VirtioMmio *t)
{
    pthread_mutex_lock(&t->lock);
}

void virtio_mmio_unlock(VirtioMmio *t)
{
    pthread_mutex_unlock(&t->lock);
}

/* With a resampling irqfd (irq_fd >= 0) a write asserts the level line
 * until the guest's EOI; KVM then deasserts it and signals irq_resample_fd,
 * and resample_event asserts it again while InterruptStatus is not 0.
 * Without one, irq.set drives the level directly. */
static void raise_irq(VirtioMmio *t)
{
    if (t->irq_fd >= 0) {
        uint64_t one = 1;
        ssize_t r = write(t->irq_fd, &one, sizeof(one));
        (void)r;
    } else {
        irq_line_raise(&t->irq);
    }
}

static void update_irq_after_ack(VirtioMmio *t)
{
    if (t->irq_fd < 0 && t->r.interrupt_status == 0)
        irq_line_lower(&t->irq);
}

void virtio_mmio_break(VirtioMmio *t, const char *reason)
{
    if (t->r.broken)
        return;
    t->r.broken = true;
    t->r.status |= VIRTIO_STATUS_NEEDS_RESET;
    t->broken_count++;
    /* A guest that breaks and resets in a loop gets fewer lines. */
    if (t->broken_count <= 8 || !(t->broken_count & (t->broken_count - 1)))
        dev_report(DEV_REPORT_FAULT, "%s: %s; device needs reset (break #%llu)", t->label, reason,
                   (unsigned long long)t->broken_count);
    if (t->r.status & VIRTIO_STATUS_DRIVER_OK) {
        t->r.interrupt_status |= VIRTIO_INT_CONFIG;
        t->r.config_generation++;
        raise_irq(t);
    }
}

void virtio_mmio_config_changed(VirtioMmio *t)
{
    t->r.config_generation++;
    if (t->r.status & VIRTIO_STATUS_DRIVER_OK) {
        t->r.interrupt_status |= VIRTIO_INT_CONFIG;
        raise_irq(t);
    }
}

void virtio_mmio_notify_used(VirtioMmio *t, unsigned q)
{
    if (q >= t->num_queues)
        return;
    if (!virtq_need_interrupt(&t->r.vq[q])) {
        t->qstats[q].suppressed++;
        return;
    }
    t->qstats[q].interrupts++;
    t->r.interrupt_status |= VIRTIO_INT_USED;
    raise_irq(t);
}

VirtioQueueStats virtio_mmio_queue_stats(VirtioMmio *t, unsigned q)
{
    VirtioQueueStats st = { 0 };
    virtio_mmio_lock(t);
    if (q < t->num_queues)
        st = t->qstats[q];
    virtio_mmio_unlock(t);
    return st;
}

VirtQueue *virtio_mmio_queue(VirtioMmio *t, unsigned q)
{
    if (q >= t->num_queues || t->r.broken || !(t->r.status & VIRTIO_STATUS_DRIVER_OK) || !t->fv)
        return NULL;
    VirtQueue *vq = &t->r.vq[q];
    if (!vq->ready)
        return NULL;
    vq->indirect = t->r.driver_features & VIRTIO_F_INDIRECT_DESC;
    vq->event_idx = t->r.driver_features & VIRTIO_F_EVENT_IDX;
    const char *why;
    if (virtq_map(vq, t->fv, &why) < 0) {
        char msg[96];
        snprintf(msg, sizeof(msg), "queue %u: %s", q, why);
        virtio_mmio_break(t, msg);
        return NULL;
    }
    return vq;
}

void virtio_mmio_run_locked(VirtioMmio *t, void (*fn)(VirtioMmio *t, void *arg), void *arg)
{
    virtio_mmio_lock(t);
    t->fv = address_space_get_flatview(t->as);
    fn(t, arg);
    if (t->fv)
        flatview_unref(t->fv);
    t->fv = NULL;
    for (unsigned i = 0; i < t->num_queues; i++)
        t->r.vq[i].desc_p = t->r.vq[i].avail_p = t->r.vq[i].used_p = NULL;
    virtio_mmio_unlock(t);
}

static void notify_fn(VirtioMmio *t, void *arg)
{
    unsigned q = (unsigned)(uintptr_t)arg;
    if (q < t->num_queues && t->r.vq[q].ready && !t->r.broken &&
        (t->r.status & VIRTIO_STATUS_DRIVER_OK))
        t->ops->queue_notify(t, q);
}

/* Lock held (vCPU fallback path without an event loop). */
static void notify_inline(VirtioMmio *t, unsigned q)
{
    t->qstats[q].kicks++;
    t->fv = address_space_get_flatview(t->as);
    notify_fn(t, (void *)(uintptr_t)q);
    if (t->fv)
        flatview_unref(t->fv);
    t->fv = NULL;
    for (unsigned i = 0; i < t->num_queues; i++)
        t->r.vq[i].desc_p = t->r.vq[i].avail_p = t->r.vq[i].used_p = NULL;
}

/* The guest EOIed the line (KVM deasserted it): assert it again if an
 * interrupt is still pending. */
static void resample_event(void *opaque, uint32_t events)
{
    VirtioMmio *t = opaque;
    (void)events;
    virtio_mmio_lock(t);
    if (t->irq_resample_fd >= 0) {
        uint64_t v;
        ssize_t r = read(t->irq_resample_fd, &v, sizeof(v));
        (void)r;
        if (t->r.interrupt_status)
            raise_irq(t);
    }
    virtio_mmio_unlock(t);
}

/* A queue's eventfd fired: `count` writes since the last read. */
typedef struct QueueEvent {
    unsigned q;
    uint64_t count;
} QueueEvent;

static void queue_event_fn(VirtioMmio *t, void *arg)
{
    const QueueEvent *ev = arg;
    uint64_t own = t->injected_kicks[ev->q] < ev->count ? t->injected_kicks[ev->q] : ev->count;
    t->injected_kicks[ev->q] -= own;
    t->qstats[ev->q].kicks += ev->count - own;
    notify_fn(t, (void *)(uintptr_t)ev->q);
}

static void queue_event(VirtioMmio *t, unsigned q)
{
    QueueEvent ev = { q, 0 };
    if (read(t->notify_fd[q], &ev.count, sizeof(ev.count)) != sizeof(ev.count))
        ev.count = 0;
    virtio_mmio_run_locked(t, queue_event_fn, &ev);
}

static void reset_locked(VirtioMmio *t)
{
    memset(&t->r, 0, sizeof(t->r));
    for (unsigned i = 0; i < VIRTIO_MMIO_MAX_QUEUES; i++)
        virtq_reset(&t->r.vq[i]);
    if (t->ops->reset)
        t->ops->reset(t);
    if (t->irq_fd < 0)
        irq_line_lower(&t->irq);
}

void virtio_mmio_reset(VirtioMmio *t)
{
    virtio_mmio_lock(t);
    reset_locked(t);
    virtio_mmio_unlock(t);
}

static VirtQueue *sel_queue(VirtioMmio *t)
{
    return t->r.queue_sel < t->num_queues ? &t->r.vq[t->r.queue_sel] : NULL;
}

static uint32_t reg_read(VirtioMmio *t, uint64_t addr)
{
    VirtQueue *vq = sel_queue(t);
    switch (addr) {
    case VIRTIO_MMIO_MAGIC_VALUE:
        return VIRTIO_MMIO_MAGIC;
    case VIRTIO_MMIO_VERSION:
        return 2;
    case VIRTIO_MMIO_DEVICE_ID:
        return t->ops->device_id;
    case VIRTIO_MMIO_VENDOR_ID:
        return VIRTIO_MMIO_VENDOR;
    case VIRTIO_MMIO_DEVICE_FEATURES:
        if (t->r.device_features_sel > 1)
            return 0;
        return (uint32_t)(t->device_features >> (32 * t->r.device_features_sel));
    case VIRTIO_MMIO_QUEUE_NUM_MAX:
        return vq ? VIRTQ_MAX_SIZE : 0;
    case VIRTIO_MMIO_QUEUE_READY:
        return vq ? vq->ready : 0;
    case VIRTIO_MMIO_INTERRUPT_STATUS:
        return t->r.interrupt_status;
    case VIRTIO_MMIO_STATUS:
        return t->r.status;
    case VIRTIO_MMIO_SHM_LEN_LOW:
    case VIRTIO_MMIO_SHM_LEN_HIGH:
        return 0xffffffffu; /* no shared memory regions */
    case VIRTIO_MMIO_CONFIG_GENERATION:
        return t->r.config_generation;
    default:
        return 0; /* write-only or reserved */
    }
}

static void set_half(uint64_t *v, bool high, uint32_t val)
{
    if (high)
        *v = (*v & 0xffffffffull) | ((uint64_t)val << 32);
    else
        *v = (*v & ~0xffffffffull) | val;
}

static void write_status(VirtioMmio *t, uint32_t val)
{
    if (val == 0) {
        reset_locked(t);
        return;
    }
    uint32_t old = t->r.status;
    uint32_t v = val & STATUS_KNOWN & ~VIRTIO_STATUS_NEEDS_RESET;
    if ((v & VIRTIO_STATUS_FEATURES_OK) && !(old & VIRTIO_STATUS_FEATURES_OK)) {
        uint64_t f = t->r.driver_features;
        if (!(f & VIRTIO_F_VERSION_1) || (f & ~t->device_features))
            v &= ~VIRTIO_STATUS_FEATURES_OK; /* refused: the driver reads it back */
    }
    if (!(v & VIRTIO_STATUS_FEATURES_OK) && (old & VIRTIO_STATUS_FEATURES_OK))
        v |= VIRTIO_STATUS_FEATURES_OK; /* cannot be taken back but by reset */
    if ((v & VIRTIO_STATUS_DRIVER_OK) && !(v & VIRTIO_STATUS_FEATURES_OK))
        v &= ~VIRTIO_STATUS_DRIVER_OK; /* legacy sequence: not supported */
    t->r.status = v | (old & VIRTIO_STATUS_NEEDS_RESET);
    if ((v & VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_DRIVER_OK) && t->ops->driver_ok &&
        !t->r.broken)
        t->ops->driver_ok(t);
}

static void write_queue_ready(VirtioMmio *t, VirtQueue *vq, uint32_t val)
{
    if (!(val & 1)) {
        vq->ready = false;
        return;
    }
    if (vq->ready)
        return;
    if (virtq_check_config(vq, VIRTQ_MAX_SIZE))
        return; /* stays 0: the driver sees the refusal */
    vq->ready = true;
}

static void reg_write(VirtioMmio *t, uint64_t addr, uint32_t val)
{
    VirtQueue *vq = sel_queue(t);
    /* queue layout is writable only while the queue is not live */
    VirtQueue *vq_cfg = vq && !vq->ready ? vq : NULL;
    bool can_features = (t->r.status & VIRTIO_STATUS_DRIVER) &&
                        !(t->r.status & VIRTIO_STATUS_FEATURES_OK);
    switch (addr) {
    case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
        t->r.device_features_sel = val;
        break;
    case VIRTIO_MMIO_DRIVER_FEATURES:
        if (can_features && t->r.driver_features_sel <= 1)
            set_half(&t->r.driver_features, t->r.driver_features_sel == 1, val);
        break;
    case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
        t->r.driver_features_sel = val;
        break;
    case VIRTIO_MMIO_QUEUE_SEL:
        t->r.queue_sel = val;
        break;
    case VIRTIO_MMIO_QUEUE_NUM:
        if (vq_cfg)
            vq_cfg->num = val > 0xffff ? 0 : (uint16_t)val;
        break;
    case VIRTIO_MMIO_QUEUE_READY:
        if (vq)
            write_queue_ready(t, vq, val);
        break;
    case VIRTIO_MMIO_QUEUE_NOTIFY:
        /* Reaches here when no ioeventfd took it (other size, no loop). */
        if (val < t->num_queues) {
            if (t->loop) {
                uint64_t one = 1;
                ssize_t r = write(t->notify_fd[val], &one, sizeof(one));
                (void)r;
            } else {
                notify_inline(t, val);
            }
        }
        break;
    case VIRTIO_MMIO_INTERRUPT_ACK:
        t->r.interrupt_status &= ~val;
        update_irq_after_ack(t);
        break;
    case VIRTIO_MMIO_STATUS:
        write_status(t, val);
        break;
    case VIRTIO_MMIO_QUEUE_DESC_LOW:
    case VIRTIO_MMIO_QUEUE_DESC_HIGH:
        if (vq_cfg)
            set_half(&vq_cfg->desc, addr == VIRTIO_MMIO_QUEUE_DESC_HIGH, val);
        break;
    case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
    case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
        if (vq_cfg)
            set_half(&vq_cfg->avail, addr == VIRTIO_MMIO_QUEUE_AVAIL_HIGH, val);
        break;
    case VIRTIO_MMIO_QUEUE_USED_LOW:
    case VIRTIO_MMIO_QUEUE_USED_HIGH:
        if (vq_cfg)
            set_half(&vq_cfg->used, addr == VIRTIO_MMIO_QUEUE_USED_HIGH, val);
        break;
    default:
        break; /* read-only or reserved: ignored */
    }
}

static uint64_t mmio_read(void *opaque, uint64_t addr, unsigned size)
{
    VirtioMmio *t = opaque;
    uint64_t v = 0;
    virtio_mmio_lock(t);
    if (addr >= VIRTIO_MMIO_CONFIG) {
        uint64_t off = addr - VIRTIO_MMIO_CONFIG;
        if (size <= 8 && off + size <= t->config_len)
            memcpy(&v, t->config + off, size); /* little-endian host */
    } else if (size == 4 && !(addr & 3)) {
        v = reg_read(t, addr);
    }
    virtio_mmio_unlock(t);
    return v;
}

static void mmio_write(void *opaque, uint64_t addr, uint64_t data, unsigned size)
{
    VirtioMmio *t = opaque;
    virtio_mmio_lock(t);
    if (addr >= VIRTIO_MMIO_CONFIG) {
        uint64_t off = addr - VIRTIO_MMIO_CONFIG;
        if (t->ops->config_write && size <= 8 && off + size <= t->config_len) {
            uint8_t b[8];
            memcpy(b, &data, sizeof(b));
            t->ops->config_write(t, (uint32_t)off, b, size);
        }
    } else if (size == 4 && !(addr & 3)) {
        reg_write(t, addr, (uint32_t)data);
    }
    virtio_mmio_unlock(t);
}

static const MemoryRegionOps mmio_ops = {
    .read = mmio_read,
    .write = mmio_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = { .min_access_size = 1, .max_access_size = 4 },
    .impl = { .min_access_size = 1, .max_access_size = 4 },
};

/* Queue q's eventfd fired (opaque: its VirtioMmioNotify). */
static void notify_event(void *o, uint32_t e)
{
    const VirtioMmioNotify *n = o;
    (void)e;
    queue_event(n->t, n->q);
}

int virtio_mmio_init(VirtioMmio *t, const VirtioEnv *env, const VirtioDevOps *ops, void *dev,
                     unsigned num_queues, uint64_t features, uint8_t *config, uint32_t config_len)
{
    Evloop *loop = env->loop;
    int r;
    memset(t, 0, sizeof(*t));
    for (unsigned i = 0; i < VIRTIO_MMIO_MAX_QUEUES; i++)
        t->notify_fd[i] = -1;
    t->irq_fd = -1;
    t->irq_resample_fd = -1;
    if (num_queues == 0 || num_queues > VIRTIO_MMIO_MAX_QUEUES ||
        config_len > VIRTIO_MMIO_SIZE - VIRTIO_MMIO_CONFIG)
        return -EINVAL;
    t->ops = ops;
    t->dev = dev;
    t->as = env->as;
    t->loop = loop;
    t->num_queues = num_queues;
    t->device_features = features | VIRTIO_F_VERSION_1 | VIRTIO_F_INDIRECT_DESC |
                         VIRTIO_F_EVENT_IDX;
    t->config = config;
    t->config_len = config_len;
    snprintf(t->label, sizeof(t->label), "%s", ops->name); /* until it is placed */
    pthread_mutex_init(&t->lock, NULL);
    if ((r = memory_region_init_io(&t->mr, env->ctx, &mmio_ops, t, ops->name, VIRTIO_MMIO_SIZE)) <
        0)
        goto fail;
    t->mr_initialized = true;
    if (loop) {
        for (unsigned i = 0; i < num_queues; i++) {
            t->notify_fd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
            if (t->notify_fd[i] < 0) {
                r = -errno;
                goto fail;
            }
            if ((r = memory_region_add_eventfd(&t->mr, VIRTIO_MMIO_QUEUE_NOTIFY, 4, true, i,
                                               t->notify_fd[i])) < 0)
                goto fail;
            t->notify_arg[i] = (VirtioMmioNotify){ t, i };
            if ((r = evloop_add(loop, t->notify_fd[i], EPOLLIN, notify_event, &t->notify_arg[i])) <
                0)
                goto fail;
        }
    }
    return 0;
fail:
    virtio_mmio_destroy(t);
    return r;
}

void virtio_mmio_connect_irq(VirtioMmio *t, const IrqLine *irq, uint64_t base)
{
    static const IrqLine none;
    virtio_mmio_lock(t);
    if (t->irq_resample_fd >= 0 && t->loop)
        evloop_del(t->loop, t->irq_resample_fd);
    t->irq = irq ? *irq : none;
    t->irq_fd = t->irq_resample_fd = -1;
    if (irq && t->loop) {
        int rfd;
        int fd = irq_line_level_eventfd(irq, &rfd);
        if (fd >= 0 && rfd >= 0 && evloop_add(t->loop, rfd, EPOLLIN, resample_event, t) == 0) {
            t->irq_fd = fd;
            t->irq_resample_fd = rfd;
        }
    }
    snprintf(t->label, sizeof(t->label), "%s@0x%llx", t->ops->name, (unsigned long long)base);
    virtio_mmio_unlock(t);
}

void virtio_mmio_withdraw_features(VirtioMmio *t, uint64_t mask)
{
    t->device_features &= ~(mask & ~VIRTIO_F_VERSION_1);
}

void virtio_mmio_destroy(VirtioMmio *t)
{
    if (!t->ops)
        return;
    for (unsigned i = 0; i < VIRTIO_MMIO_MAX_QUEUES; i++) {
        if (t->notify_fd[i] < 0)
            continue;
        if (t->loop)
            evloop_del(t->loop, t->notify_fd[i]);
        if (t->mr_initialized)
            memory_region_del_eventfd(&t->mr, VIRTIO_MMIO_QUEUE_NOTIFY, 4, true, i,
                                      t->notify_fd[i]);
        close(t->notify_fd[i]);
        t->notify_fd[i] = -1;
    }
    if (t->irq_resample_fd >= 0 && t->loop)
        evloop_del(t->loop, t->irq_resample_fd);
    t->irq_fd = t->irq_resample_fd = -1;
    if (t->mr_initialized)
        memory_region_destroy(&t->mr);
    t->mr_initialized = false;
    pthread_mutex_destroy(&t->lock);
    t->ops = NULL;
}

MemoryRegion *virtio_mmio_region(VirtioMmio *t)
{
    return &t->mr;
}

static const StateField queue_fields[] = {
    STATE_U16(VirtioQueueStateData, num),      STATE_U8(VirtioQueueStateData, ready),
    STATE_U64(VirtioQueueStateData, desc),     STATE_U64(VirtioQueueStateData, avail),
    STATE_U64(VirtioQueueStateData, used),     STATE_U16(VirtioQueueStateData, last_avail_idx),
    STATE_U16(VirtioQueueStateData, used_idx),
};
static const StateTable queue_table = STATE_TABLE(VirtioQueueStateData, queue_fields);

static const StateField transport_fields[] = {
    STATE_U32(VirtioMmioStateData, status),
    STATE_U32(VirtioMmioStateData, device_features_sel),
    STATE_U32(VirtioMmioStateData, driver_features_sel),
    STATE_U64(VirtioMmioStateData, driver_features),
    STATE_U32(VirtioMmioStateData, queue_sel),
    STATE_U32(VirtioMmioStateData, interrupt_status),
    STATE_U32(VirtioMmioStateData, config_generation),
    STATE_U8(VirtioMmioStateData, broken),
    STATE_U8(VirtioMmioStateData, num_queues),
    STATE_STRUCT_VARRAY(VirtioMmioStateData, vq, &queue_table, num_queues),
};
const StateTable virtio_mmio_state_table = STATE_TABLE(VirtioMmioStateData, transport_fields);

/* The transport state of t (lock held). */
static void get_state(VirtioMmio *t, VirtioMmioStateData *st)
{
    const VirtioMmioRegs *r = &t->r;
    memset(st, 0, sizeof(*st));
    st->status = r->status;
    st->device_features_sel = r->device_features_sel;
    st->driver_features_sel = r->driver_features_sel;
    st->driver_features = r->driver_features;
    st->queue_sel = r->queue_sel;
    st->interrupt_status = r->interrupt_status;
    st->config_generation = r->config_generation;
    st->broken = r->broken;
    st->num_queues = (uint8_t)t->num_queues;
    for (unsigned i = 0; i < t->num_queues; i++) {
        const VirtQueue *vq = &r->vq[i];
        st->vq[i] = (VirtioQueueStateData){
            .num = vq->num,
            .ready = vq->ready,
            .desc = vq->desc,
            .avail = vq->avail,
            .used = vq->used,
            .last_avail_idx = vq->last_avail_idx,
            .used_idx = vq->used_idx,
        };
    }
}

static int bad(char *err, size_t errlen, VirtioMmio *t, const char *what)
{
    if (err && errlen)
        snprintf(err, errlen, "%s state: %s", t->ops->name, what);
    return -EINVAL;
}

static int check_queue(VirtioMmio *t, const VirtioQueueStateData *q, char *err, size_t errlen)
{
    if (q->ready > 1)
        return bad(err, errlen, t, "invalid queue ready flag");
    if (q->num > VIRTQ_MAX_SIZE)
        return bad(err, errlen, t, "queue size above QueueNumMax");
    VirtQueue vq = { .num = q->num, .desc = q->desc, .avail = q->avail, .used = q->used };
    if (q->ready && virtq_check_config(&vq, VIRTQ_MAX_SIZE))
        return bad(err, errlen, t, "ready queue with an invalid size or ring alignment");
    return 0;
}

/* The hand-written checks of a decoded transport state against t. */
static int check_state(VirtioMmio *t, const VirtioMmioStateData *st, char *err, size_t errlen)
{
    if (st->num_queues != t->num_queues) {
        if (err && errlen)
            snprintf(err, errlen,
                     "%s state: %u queues, the device here has %u (the queue count "
                     "must match)",
                     t->ops->name, st->num_queues, t->num_queues);
        return -EINVAL;
    }
    for (unsigned i = 0; i < st->num_queues; i++)
        if (check_queue(t, &st->vq[i], err, errlen) < 0)
            return -EINVAL;
    if (st->broken > 1)
        return bad(err, errlen, t, "invalid broken flag");
    if (st->status & ~STATUS_KNOWN)
        return bad(err, errlen, t, "unknown status bits");
    if (st->broken != !!(st->status & VIRTIO_STATUS_NEEDS_RESET))
        return bad(err, errlen, t, "broken flag and DEVICE_NEEDS_RESET disagree");
    if (st->driver_features & ~t->device_features)
        return bad(err, errlen, t, "driver features the device does not offer");
    if ((st->status & VIRTIO_STATUS_FEATURES_OK) && !(st->driver_features & VIRTIO_F_VERSION_1))
        return bad(err, errlen, t, "FEATURES_OK without VIRTIO_F_VERSION_1");
    if (st->interrupt_status & ~(VIRTIO_INT_USED | VIRTIO_INT_CONFIG))
        return bad(err, errlen, t, "unknown interrupt status bits");
    return 0;
}

/* The registers a checked state describes (queues past t's are dropped). */
static void regs_from_state(VirtioMmio *t, const VirtioMmioStateData *st, VirtioMmioRegs *r)
{
    memset(r, 0, sizeof(*r));
    r->status = st->status;
    r->device_features_sel = st->device_features_sel;
    r->driver_features_sel = st->driver_features_sel;
    r->driver_features = st->driver_features;
    r->queue_sel = st->queue_sel;
    r->interrupt_status = st->interrupt_status;
    r->config_generation = st->config_generation;
    r->broken = st->broken;
    for (unsigned i = 0; i < st->num_queues && i < t->num_queues; i++) {
        const VirtioQueueStateData *q = &st->vq[i];
        r->vq[i] = (VirtQueue){
            .num = q->num,
            .ready = q->ready,
            .desc = q->desc,
            .avail = q->avail,
            .used = q->used,
            .last_avail_idx = q->last_avail_idx,
            .used_idx = q->used_idx,
        };
    }
}

void virtio_mmio_set_state(VirtioMmio *t, const VirtioMmioStateData *st)
{
    regs_from_state(t, st, &t->r);
    if (t->r.interrupt_status)
        raise_irq(t);
    else if (t->irq_fd < 0)
        irq_line_lower(&t->irq);
    /* A notification may have been pending when the state was saved. */
    for (unsigned i = 0; t->loop && i < t->num_queues; i++) {
        if (t->r.vq[i].ready) {
            uint64_t one = 1;
            if (write(t->notify_fd[i], &one, sizeof(one)) == sizeof(one))
                t->injected_kicks[i]++;
        }
    }
}

void virtio_mmio_install_state(VirtioMmio *t, const VirtioMmioStateData *st)
{
    virtio_mmio_lock(t);
    virtio_mmio_set_state(t, st);
    virtio_mmio_unlock(t);
}

/* A device's section starts with the transport's state (see virtio-mmio.h). */
static bool transport_first(const StateSection *sec)
{
    const StateField *f = sec->table->nfields ? &sec->table->fields[0] : NULL;
    return f && f->offset == 0 && f->kind == STATE_KIND_STRUCT &&
           f->table == &virtio_mmio_state_table;
}

int virtio_mmio_save_state(VirtioMmio *t, const StateSection *sec, void *st, uint8_t **buf,
                           size_t *len)
{
    if (!transport_first(sec))
        return -EINVAL;
    virtio_mmio_lock(t);
    get_state(t, st);
    virtio_mmio_unlock(t);
    return state_save_section(sec, st, buf, len);
}

int virtio_mmio_load_state(VirtioMmio *t, const StateSection *sec, const uint8_t *buf, size_t len,
                           void *st, char *err, size_t errlen)
{
    if (!transport_first(sec))
        return state_refuse(sec, err, errlen, "table error: the transport is not first");
    int ret = state_load_section(sec, buf, len, st, err, errlen);
    if (ret < 0)
        return ret;
    return check_state(t, st, err, errlen);
}

int virtio_mmio_pop(VirtioMmio *t, unsigned q, VirtQueue *vq, VirtqElem *e)
{
    const char *why = NULL;
    int r = virtq_pop(vq, t->fv, e, &why);
    if (r < 0) {
        char msg[112];
        snprintf(msg, sizeof(msg), "queue %u: %s", q, why);
        virtio_mmio_break(t, msg);
    }
    return r;
}

int virtio_mmio_save(VirtioMmio *t, uint8_t **buf, size_t *len)
{
    return t->ops->save(t, buf, len);
}

int virtio_mmio_load(VirtioMmio *t, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    return t->ops->load(t, buf, len, err, errlen);
}
