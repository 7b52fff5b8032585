/* SPDX-License-Identifier: MIT */
/* Test harness for the virtio devices (see vtest.h). */
#include "tests/virtio/vtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/virtio-blk.h"

static void die(const char *what)
{
    fprintf(stderr, "vtest: %s\n", what);
    abort();
}

static void irq_set(void *opaque, int level)
{
    VtIrq *s = opaque;
    if (level)
        s->raises++;
    else
        s->lowers++;
    s->level = level;
}

void vt_setup(Vt *vt)
{
    memset(vt, 0, sizeof(*vt));
    vt->ctx = memory_context_new();
    if (!vt->ctx || memory_region_init(&vt->system, vt->ctx, "system", UINT64_MAX) < 0 ||
        memory_region_init_ram(&vt->ram, vt->ctx, NULL, "ram", VT_RAM_SIZE) < 0 ||
        memory_region_add_subregion(&vt->system, 0, &vt->ram) < 0)
        die("memory setup");
    vt->as = address_space_new(vt->ctx, &vt->system, "memory");
    if (!vt->as)
        die("address space");
    vt->ram_p = memory_region_get_ram_ptr(&vt->ram);
    vt->irq.set = irq_set;
    vt->irq.opaque = &vt->irq_state;
}

void vt_map(Vt *vt, MemoryRegion *mr)
{
    if (memory_region_add_subregion(&vt->system, VT_BASE, mr) < 0)
        die("mapping the device");
    vt->dev_mr = mr;
}

void vt_teardown(Vt *vt)
{
    if (vt->dev_mr)
        memory_region_del_subregion(&vt->system, vt->dev_mr);
    vt->dev_mr = NULL;
}

void vt_free(Vt *vt)
{
    address_space_destroy(vt->as);
    memory_region_del_subregion(&vt->system, &vt->ram);
    memory_region_destroy(&vt->ram);
    memory_region_destroy(&vt->system);
    memory_context_free(vt->ctx);
}

uint32_t vt_r32(Vt *vt, uint64_t off)
{
    uint32_t v = 0;
    address_space_read(vt->as, VT_BASE + off, &v, 4);
    return v;
}

void vt_w32(Vt *vt, uint64_t off, uint32_t v)
{
    address_space_write(vt->as, VT_BASE + off, &v, 4);
}

uint64_t vt_cfg(Vt *vt, uint64_t off, unsigned size)
{
    uint64_t v = 0;
    address_space_read(vt->as, VT_BASE + VIRTIO_MMIO_CONFIG + off, &v, size);
    return v;
}

uint32_t vt_negotiate(Vt *vt, uint64_t want)
{
    vt_w32(vt, VIRTIO_MMIO_STATUS, 0);
    vt_w32(vt, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
    vt_w32(vt, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    uint64_t dev = 0;
    for (uint32_t sel = 0; sel < 2; sel++) {
        vt_w32(vt, VIRTIO_MMIO_DEVICE_FEATURES_SEL, sel);
        dev |= (uint64_t)vt_r32(vt, VIRTIO_MMIO_DEVICE_FEATURES) << (32 * sel);
    }
    uint64_t f = (dev & want) | VIRTIO_F_VERSION_1;
    vt->features = f;
    for (uint32_t sel = 0; sel < 2; sel++) {
        vt_w32(vt, VIRTIO_MMIO_DRIVER_FEATURES_SEL, sel);
        vt_w32(vt, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(f >> (32 * sel)));
    }
    vt_w32(vt, VIRTIO_MMIO_STATUS,
           VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    return vt_r32(vt, VIRTIO_MMIO_STATUS);
}

uint32_t vt_queue(Vt *vt, unsigned q, uint16_t num)
{
    VtQueue *vq = &vt->q[q];
    memset(vq, 0, sizeof(*vq));
    vq->num = num;
    vq->desc = VT_RINGS + q * 0x4000ull;
    vq->avail = vq->desc + 0x1000;
    vq->used = vq->desc + 0x2000;
    memset(vt_ptr(vt, vq->desc), 0, 0x3000);
    vt_w32(vt, VIRTIO_MMIO_QUEUE_SEL, q);
    vt_w32(vt, VIRTIO_MMIO_QUEUE_NUM, num);
    vt_w32(vt, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)vq->desc);
    vt_w32(vt, VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(vq->desc >> 32));
    vt_w32(vt, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)vq->avail);
    vt_w32(vt, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, 0);
    vt_w32(vt, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)vq->used);
    vt_w32(vt, VIRTIO_MMIO_QUEUE_USED_HIGH, 0);
    vt_w32(vt, VIRTIO_MMIO_QUEUE_READY, 1);
    return vt_r32(vt, VIRTIO_MMIO_QUEUE_READY);
}

void vt_driver_ok(Vt *vt)
{
    vt_w32(vt, VIRTIO_MMIO_STATUS,
           VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
               VIRTIO_STATUS_DRIVER_OK);
}

void vt_bringup(Vt *vt, uint64_t want, unsigned nq, uint16_t num)
{
    if (!(vt_negotiate(vt, want) & VIRTIO_STATUS_FEATURES_OK))
        die("FEATURES_OK refused");
    for (unsigned q = 0; q < nq; q++)
        if (vt_queue(vt, q, num) != 1)
            die("queue not ready");
    vt_driver_ok(vt);
}

void *vt_ptr(Vt *vt, uint64_t gpa)
{
    if (gpa >= VT_RAM_SIZE)
        die("vt_ptr outside RAM");
    return vt->ram_p + gpa;
}

void vt_write_desc(Vt *vt, unsigned q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
                   uint16_t next)
{
    uint8_t *d = vt_ptr(vt, vt->q[q].desc + 16ull * i);
    memcpy(d, &addr, 8);
    memcpy(d + 8, &len, 4);
    memcpy(d + 12, &flags, 2);
    memcpy(d + 14, &next, 2);
}

void vt_set_avail_idx(Vt *vt, unsigned q, uint16_t idx)
{
    memcpy(vt_ptr(vt, vt->q[q].avail + 2), &idx, 2);
}

uint16_t vt_add(Vt *vt, unsigned q, const VtBuf *b, unsigned n)
{
    VtQueue *vq = &vt->q[q];
    uint16_t head = vq->next_desc;
    for (unsigned k = 0; k < n; k++) {
        uint16_t i = (uint16_t)((head + k) % vq->num);
        uint16_t next = (uint16_t)((i + 1) % vq->num);
        uint16_t flags = (uint16_t)((b[k].write ? VIRTQ_DESC_F_WRITE : 0) |
                                    (k + 1 < n ? VIRTQ_DESC_F_NEXT : 0));
        vt_write_desc(vt, q, i, b[k].addr, b[k].len, flags, next);
    }
    vq->next_desc = (uint16_t)((head + n) % vq->num);
    memcpy(vt_ptr(vt, vq->avail + 4 + 2ull * (vq->avail_idx % vq->num)), &head, 2);
    vq->avail_idx++;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    vt_set_avail_idx(vt, q, vq->avail_idx);
    return head;
}

uint16_t vt_add_indirect(Vt *vt, unsigned q, uint64_t table_gpa, const VtBuf *b, unsigned n)
{
    for (unsigned k = 0; k < n; k++) {
        uint8_t *d = vt_ptr(vt, table_gpa + 16ull * k);
        uint16_t flags = (uint16_t)((b[k].write ? VIRTQ_DESC_F_WRITE : 0) |
                                    (k + 1 < n ? VIRTQ_DESC_F_NEXT : 0));
        uint16_t next = (uint16_t)(k + 1);
        memcpy(d, &b[k].addr, 8);
        memcpy(d + 8, &b[k].len, 4);
        memcpy(d + 12, &flags, 2);
        memcpy(d + 14, &next, 2);
    }
    VtBuf ind = { table_gpa, 16 * n, false };
    uint16_t head = vt_add(vt, q, &ind, 1);
    vt_write_desc(vt, q, head, table_gpa, 16 * n, VIRTQ_DESC_F_INDIRECT, 0);
    return head;
}

void vt_kick(Vt *vt, unsigned q)
{
    vt_w32(vt, VIRTIO_MMIO_QUEUE_NOTIFY, q);
}

bool vt_kick_prepare(Vt *vt, unsigned q)
{
    VtQueue *vq = &vt->q[q];
    uint16_t old = vq->kicked_idx, now = vq->avail_idx;
    vq->kicked_idx = now;
    __atomic_thread_fence(__ATOMIC_SEQ_CST); /* avail idx before avail_event */
    if (vt->features & VIRTIO_F_EVENT_IDX)
        return vring_need_event(vt_avail_event(vt, q), now, old);
    uint16_t flags;
    memcpy(&flags, vt_ptr(vt, vq->used), 2);
    return !(flags & VIRTQ_USED_F_NO_NOTIFY);
}

void vt_set_used_event(Vt *vt, unsigned q, uint16_t idx)
{
    memcpy(vt_ptr(vt, vt->q[q].avail + 4 + 2ull * vt->q[q].num), &idx, 2);
    __atomic_thread_fence(__ATOMIC_SEQ_CST); /* used_event before used idx */
}

uint16_t vt_avail_event(Vt *vt, unsigned q)
{
    uint16_t v;
    memcpy(&v, vt_ptr(vt, vt->q[q].used + 4 + 8ull * vt->q[q].num), 2);
    return v;
}

int vt_used(Vt *vt, unsigned q, uint32_t *id, uint32_t *len)
{
    VtQueue *vq = &vt->q[q];
    uint16_t idx;
    memcpy(&idx, vt_ptr(vt, vq->used + 2), 2);
    if (idx == vq->used_seen)
        return 0;
    const uint8_t *e = vt_ptr(vt, vq->used + 4 + 8ull * (vq->used_seen % vq->num));
    memcpy(id, e, 4);
    memcpy(len, e + 4, 4);
    vq->used_seen++;
    return (uint16_t)(idx - vq->used_seen + 1);
}

struct VirtioBlk *vt_blk_new_mq(Vt *vt, unsigned nq)
{
    char path[] = "/tmp/strata-vtest-blk-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || ftruncate(fd, 64 * 512) < 0)
        abort();
    VirtioBlk *blk = calloc(1, sizeof(*blk));
    char err[256];
    if (!blk || virtio_blk_init(blk, &(VirtioEnv){ vt->ctx, vt->as, NULL }, path, false, nq, err,
                                sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        abort();
    }
    virtio_mmio_connect_irq(&blk->t, NULL, VT_BASE);
    unlink(path);
    close(fd);
    vt_map(vt, virtio_mmio_region(&blk->t));
    return blk;
}

struct VirtioBlk *vt_blk_new(Vt *vt)
{
    return vt_blk_new_mq(vt, 1);
}
