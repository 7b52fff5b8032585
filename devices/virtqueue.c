/* SPDX-License-Identifier: MIT */
/* Split virtqueues over hostile guest memory (see virtqueue.h). */
#include "devices/virtqueue.h"

#include <string.h>

void *guest_mem_map(FlatView *fv, uint64_t gpa, uint64_t len, bool write)
{
    MemoryRegion *mr;
    uint64_t off;
    return guest_mem_map_region(fv, gpa, len, write, &mr, &off);
}

void *guest_mem_map_region(FlatView *fv, uint64_t gpa, uint64_t len, bool write,
                           MemoryRegion **mr_out, uint64_t *off_out)
{
    if (!fv || len == 0 || gpa + len < gpa)
        return NULL;
    const FlatRange *fr = flatview_lookup(fv, gpa);
    if (!fr || !memory_region_is_ram(fr->mr) || memory_region_is_rom_device(fr->mr))
        return NULL;
    if (write && fr->readonly)
        return NULL;
    uint64_t off = gpa - fr->start;
    if ((Int128)off + len > fr->size)
        return NULL;
    uint8_t *base = memory_region_get_ram_ptr(fr->mr);
    if (!base)
        return NULL;
    uint64_t in_region = fr->offset_in_region + off;
    if (write)
        memory_region_set_dirty(fr->mr, in_region, len);
    *mr_out = fr->mr;
    *off_out = in_region;
    return base + in_region;
}

void virtq_reset(VirtQueue *vq)
{
    memset(vq, 0, sizeof(*vq));
}

const char *virtq_check_config(const VirtQueue *vq, uint16_t num_max)
{
    if (vq->num == 0 || vq->num > num_max || (vq->num & (vq->num - 1)))
        return "queue size is not a power of two up to QueueNumMax";
    if (vq->desc & 15)
        return "descriptor table not 16-byte aligned";
    if (vq->avail & 1)
        return "available ring not 2-byte aligned";
    if (vq->used & 3)
        return "used ring not 4-byte aligned";
    return NULL;
}

/* Ring sizes in bytes (virtio 1.2, 2.7): with EVENT_IDX, used_event
 * follows the avail ring and avail_event the used ring. */
static uint64_t avail_bytes(const VirtQueue *vq)
{
    return 4 + 2 * (uint64_t)vq->num + (vq->event_idx ? 2 : 0);
}

static uint64_t used_bytes(const VirtQueue *vq)
{
    return 4 + 8 * (uint64_t)vq->num + (vq->event_idx ? 2 : 0);
}

int virtq_map(VirtQueue *vq, FlatView *fv, const char **why)
{
    if ((*why = virtq_check_config(vq, VIRTQ_MAX_SIZE)))
        return -1;
    vq->desc_p = guest_mem_map(fv, vq->desc, 16 * (uint64_t)vq->num, false);
    vq->avail_p = guest_mem_map(fv, vq->avail, avail_bytes(vq), false);
    vq->used_p = guest_mem_map_region(fv, vq->used, used_bytes(vq), true, &vq->used_mr,
                                      &vq->used_off);
    if (!vq->desc_p || !vq->avail_p || !vq->used_p) {
        *why = !vq->desc_p    ? "descriptor table outside RAM"
               : !vq->avail_p ? "available ring outside RAM"
                              : "used ring outside RAM";
        vq->desc_p = vq->avail_p = vq->used_p = NULL;
        return -1;
    }
    return 0;
}

static uint16_t load16(const uint8_t *p)
{
    return __atomic_load_n((const uint16_t *)(const void *)p, __ATOMIC_ACQUIRE);
}

static uint16_t avail_idx(const VirtQueue *vq)
{
    return load16(vq->avail_p + 2);
}

/* EVENT_IDX: asks the driver to kick when it makes entry last_avail_idx
 * available, then fences so that the avail index read next is not older
 * than this write (the driver does the mirror image: index, fence,
 * avail_event). */
static void set_avail_event(VirtQueue *vq)
{
    size_t at = 4 + 8 * (size_t)vq->num;
    __atomic_store_n((uint16_t *)(void *)(vq->used_p + at), vq->last_avail_idx, __ATOMIC_RELAXED);
    if (vq->used_mr)
        memory_region_set_dirty(vq->used_mr, vq->used_off + at, 2);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/* True if nothing is available; with EVENT_IDX, only once avail_event asks
 * for a kick and a second look still finds nothing.  *idx: the avail index
 * last read. */
static bool queue_empty(VirtQueue *vq, uint16_t *idx)
{
    *idx = avail_idx(vq);
    if (*idx != vq->last_avail_idx)
        return false;
    if (!vq->event_idx)
        return true;
    set_avail_event(vq);
    *idx = avail_idx(vq);
    return *idx == vq->last_avail_idx;
}

bool virtq_has_avail(VirtQueue *vq)
{
    uint16_t idx;
    return vq->avail_p && !queue_empty(vq, &idx);
}

bool virtq_need_interrupt(VirtQueue *vq)
{
    if (!vq->avail_p)
        return true;
    /* the used index written before the driver's flags or event are read
     * (the driver writes those, fences, then reads the used index) */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (!vq->event_idx)
        return !(load16(vq->avail_p) & VIRTQ_AVAIL_F_NO_INTERRUPT);
    uint16_t used_event = load16(vq->avail_p + 4 + 2 * (size_t)vq->num);
    uint16_t old = vq->signalled_used;
    bool valid = vq->signalled_valid;
    vq->signalled_used = vq->used_idx;
    vq->signalled_valid = true;
    return !valid || vring_need_event(used_event, vq->used_idx, old);
}

/* One descriptor, copied out of guest memory before anything looks at it. */
typedef struct Desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags, next;
} Desc;

static void read_desc(const uint8_t *table, unsigned i, Desc *d)
{
    uint8_t b[16];
    memcpy(b, table + 16 * (size_t)i, sizeof(b));
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    memcpy(&d->addr, b, 8);
    memcpy(&d->len, b + 8, 4);
    memcpy(&d->flags, b + 12, 2);
    memcpy(&d->next, b + 14, 2);
}

/* Appends the buffer of a direct descriptor to e; 0 or -1 with *why. */
static int add_buf(FlatView *fv, VirtqElem *e, const Desc *d, const char **why)
{
    bool w = d->flags & VIRTQ_DESC_F_WRITE;
    if (!w && e->in_num) {
        *why = "device-readable descriptor after a device-writable one";
        return -1;
    }
    if (e->out_len + e->in_len + d->len > VIRTQ_MAX_CHAIN_BYTES) {
        *why = "descriptor chain longer than 2 GiB";
        return -1;
    }
    if (!d->len)
        return 0;
    if (e->out_num + e->in_num >= VIRTQ_MAX_SIZE) {
        *why = "descriptor chain of more than 256 buffers";
        return -1;
    }
    MemoryRegion *mr = NULL;
    uint64_t off = 0;
    void *p = guest_mem_map_region(fv, d->addr, d->len, w, &mr, &off);
    if (!p) {
        *why = w ? "writable descriptor outside writable RAM" : "descriptor outside RAM";
        return -1;
    }
    struct iovec *v = &e->iov[e->out_num + e->in_num];
    v->iov_base = p;
    v->iov_len = d->len;
    if (w) {
        e->in_mr[e->in_num] = mr;
        e->in_off[e->in_num] = off;
        e->in_num++;
        e->in_len += d->len;
    } else {
        e->out_num++;
        e->out_len += d->len;
    }
    return 0;
}

/* Appends the buffers of the indirect table that d points at (the chain's
 * last descriptor); 0 or -1 with *why. */
static int add_indirect(FlatView *fv, VirtqElem *e, const Desc *d, const char **why)
{
    if (d->flags & VIRTQ_DESC_F_NEXT) {
        *why = "indirect descriptor with NEXT set";
        return -1;
    }
    if (d->len == 0 || d->len % 16) {
        *why = d->len ? "indirect table length not a multiple of 16" : "indirect table of length 0";
        return -1;
    }
    unsigned n = d->len / 16;
    if (n > VIRTQ_MAX_INDIRECT) {
        *why = "indirect table of more than 256 descriptors";
        return -1;
    }
    const uint8_t *table = guest_mem_map(fv, d->addr, d->len, false);
    if (!table) {
        *why = "indirect table outside RAM";
        return -1;
    }
    uint16_t i = 0;
    for (unsigned count = 0;; count++) {
        if (count >= n) {
            *why = "indirect chain loops (longer than its table)";
            return -1;
        }
        Desc x;
        read_desc(table, i, &x);
        if (x.flags & VIRTQ_DESC_F_INDIRECT) {
            *why = "indirect descriptor inside an indirect table";
            return -1;
        }
        if (add_buf(fv, e, &x, why) < 0)
            return -1;
        if (!(x.flags & VIRTQ_DESC_F_NEXT))
            return 0;
        if (x.next >= n) {
            *why = "indirect descriptor next field past its table";
            return -1;
        }
        i = x.next;
    }
}

int virtq_pop(VirtQueue *vq, FlatView *fv, VirtqElem *e, const char **why)
{
    if (!vq->avail_p) {
        *why = "queue not mapped";
        return -1;
    }
    uint16_t idx;
    if (queue_empty(vq, &idx))
        return 0;
    uint16_t pending = (uint16_t)(idx - vq->last_avail_idx);
    if (pending > vq->num) {
        *why = "available index more than the queue size ahead";
        return -1;
    }
    uint16_t head = load16(vq->avail_p + 4 + 2 * (vq->last_avail_idx & (vq->num - 1)));
    if (head >= vq->num) {
        *why = "available ring names a descriptor past the queue size";
        return -1;
    }
    e->head = head;
    e->out_num = e->in_num = 0;
    e->out_len = e->in_len = 0;
    uint16_t i = head;
    for (unsigned count = 0;; count++) {
        if (count >= vq->num) {
            *why = "descriptor chain loops (longer than the queue size)";
            return -1;
        }
        Desc d;
        read_desc(vq->desc_p, i, &d);
        if (d.flags & VIRTQ_DESC_F_INDIRECT) {
            if (!vq->indirect) {
                *why = "indirect descriptor (not negotiated)";
                return -1;
            }
            /* the table ends the chain: it never leads back here */
            if (add_indirect(fv, e, &d, why) < 0)
                return -1;
            break;
        }
        if (add_buf(fv, e, &d, why) < 0)
            return -1;
        if (!(d.flags & VIRTQ_DESC_F_NEXT))
            break;
        if (d.next >= vq->num) {
            *why = "descriptor next field past the queue size";
            return -1;
        }
        i = d.next;
    }
    vq->last_avail_idx++;
    return 1;
}

void virtq_unpop(VirtQueue *vq)
{
    vq->last_avail_idx--;
}

void virtq_push(VirtQueue *vq, const VirtqElem *e, uint32_t len)
{
    if (!vq->used_p)
        return;
    uint8_t *ent = vq->used_p + 4 + 8 * (size_t)(vq->used_idx & (vq->num - 1));
    uint32_t id = e->head;
    memcpy(ent, &id, 4);
    memcpy(ent + 4, &len, 4);
    vq->used_idx++;
    /* 2^16 entries since the last interrupt decision: old and new indices
     * coincide and the crossing test cannot tell, so interrupt next time */
    if (vq->used_idx == vq->signalled_used)
        vq->signalled_valid = false;
    __atomic_store_n((uint16_t *)(void *)(vq->used_p + 2), vq->used_idx, __ATOMIC_RELEASE);
    /* After the writes: a harvest that ran between the buffers' mapping
     * (which marked them) and these writes would otherwise miss them.
     * Every writable buffer, whatever `len` says: a device may write a
     * status byte past the count it reports (virtio-blk on errors). */
    for (unsigned i = 0; i < e->in_num; i++)
        if (e->in_mr[i])
            memory_region_set_dirty(e->in_mr[i], e->in_off[i], e->iov[e->out_num + i].iov_len);
    if (vq->used_mr)
        memory_region_set_dirty(vq->used_mr, vq->used_off, used_bytes(vq));
}

size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t skip, void *buf, size_t len)
{
    size_t done = 0;
    for (unsigned i = 0; i < n && done < len; i++) {
        size_t l = iov[i].iov_len;
        if (skip >= l) {
            skip -= l;
            continue;
        }
        size_t c = l - skip < len - done ? l - skip : len - done;
        memcpy((uint8_t *)buf + done, (uint8_t *)iov[i].iov_base + skip, c);
        done += c;
        skip = 0;
    }
    return done;
}

size_t iov_from_buf(const struct iovec *iov, unsigned n, size_t skip, const void *buf, size_t len)
{
    size_t done = 0;
    for (unsigned i = 0; i < n && done < len; i++) {
        size_t l = iov[i].iov_len;
        if (skip >= l) {
            skip -= l;
            continue;
        }
        size_t c = l - skip < len - done ? l - skip : len - done;
        memcpy((uint8_t *)iov[i].iov_base + skip, (const uint8_t *)buf + done, c);
        done += c;
        skip = 0;
    }
    return done;
}

unsigned iov_slice(const struct iovec *iov, unsigned n, size_t skip, size_t len, struct iovec *dst,
                   unsigned max)
{
    unsigned k = 0;
    for (unsigned i = 0; i < n && len && k < max; i++) {
        size_t l = iov[i].iov_len;
        if (skip >= l) {
            skip -= l;
            continue;
        }
        size_t c = l - skip < len ? l - skip : len;
        dst[k].iov_base = (uint8_t *)iov[i].iov_base + skip;
        dst[k].iov_len = c;
        k++;
        len -= c;
        skip = 0;
    }
    return k;
}
