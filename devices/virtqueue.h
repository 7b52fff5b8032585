/* SPDX-License-Identifier: MIT */
/*
 * Split virtqueues (virtio 1.2, 2.7) over guest memory, from the device's
 * side.  Everything in guest memory is hostile: rings and descriptors are
 * translated to host pointers only when [addr, addr+len) lies entirely
 * inside one RAM range of the address space, descriptors are copied before
 * they are checked, chains are bounded by the queue size.  Any violation
 * returns an error with a reason; the transport then marks the device
 * broken (DEVICE_NEEDS_RESET).
 *
 * Two ring features (virtio 1.2, 2.7.5.3 and 2.7.7/2.7.10), used when the
 * driver negotiated them (VirtQueue.indirect, .event_idx, which the
 * transport sets from the driver's features):
 * - VIRTIO_F_INDIRECT_DESC: a chain is zero or more direct descriptors and
 *   then at most one descriptor pointing at a table of descriptors.  The
 *   table is hostile like the rest: its length must be a non-zero multiple
 *   of 16 and at most VIRTQ_MAX_INDIRECT descriptors, it must lie inside one
 *   RAM range, its `next` fields index the table itself (never the queue's
 *   table), a chain inside it longer than the table is a loop, an indirect
 *   descriptor inside it is refused, and so is an indirect descriptor that
 *   also has NEXT; a whole chain holds at most VIRTQ_MAX_SIZE buffers.
 * - VIRTIO_F_EVENT_IDX: the driver's used_event (after the avail ring)
 *   decides the interrupts (virtq_need_interrupt), and whenever the device
 *   finds the queue empty (virtq_pop returns 0, virtq_has_avail says no)
 *   it writes avail_event (after the used ring) to ask for a kick on the
 *   next buffer, then looks again.  So a device must take buffers until
 *   the queue is empty, or be woken by something else, as virtio-net's RX
 *   is by its backend.
 *
 * Not thread safe: the transport serialises access with its lock.
 */
#ifndef STRATA_DEVICES_VIRTQUEUE_H
#define STRATA_DEVICES_VIRTQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "memory/memory.h"

#define VIRTQ_MAX_SIZE 256u                /* QueueNumMax of our devices */
#define VIRTQ_MAX_CHAIN_BYTES (1ull << 31) /* a longer chain is hostile */
/* Descriptors in one indirect table, whatever the queue size: Linux sizes
 * its tables by virtio-blk's seg_max (VIRTQ_MAX_SIZE - 2) plus header and
 * status, not by the queue size; a chain holds at most VIRTQ_MAX_SIZE
 * buffers in all (VirtqElem's iov). */
#define VIRTQ_MAX_INDIRECT VIRTQ_MAX_SIZE

/* Feature bits of the rings (virtio 1.2, 6) that the transport offers for
 * every device. */
#define VIRTIO_F_INDIRECT_DESC (1ull << 28)
#define VIRTIO_F_EVENT_IDX (1ull << 29)

#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY 1

/* The event-index rule (virtio 1.2, 2.7.7.2 and 2.7.10): with the other
 * side's event index `event`, moving an index from old to new_idx crosses
 * it (a notification is due) iff event lies in [old, new_idx), all modulo
 * 2^16. */
static inline bool vring_need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
    return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

/* One queue: what the driver programmed and where the device stands. */
typedef struct VirtQueue {
    uint16_t num;               /* QueueNum (power of two when ready) */
    bool ready;                 /* QueueReady */
    uint64_t desc, avail, used; /* guest-physical ring addresses */
    uint16_t last_avail_idx;    /* next avail entry the device takes */
    uint16_t used_idx;          /* next used entry the device writes */
    /* negotiated ring features (set by the transport before virtq_map) */
    bool indirect, event_idx;
    /* EVENT_IDX: used_idx when virtq_need_interrupt last ran, if valid
     * (not after a reset or a load: then the next one interrupts) */
    uint16_t signalled_used;
    bool signalled_valid;
    /* host pointers, valid between virtq_map and the end of the batch */
    uint8_t *desc_p, *avail_p, *used_p;
    /* the RAM region and offset behind used_p (dirty marking at push) */
    MemoryRegion *used_mr;
    uint64_t used_off;
} VirtQueue;

/* One popped chain: device-readable buffers (out) then device-writable (in). */
typedef struct VirtqElem {
    uint16_t head;
    unsigned out_num, in_num; /* iov[0..out_num) readable, then in_num writable */
    uint64_t out_len, in_len; /* byte totals */
    struct iovec iov[VIRTQ_MAX_SIZE];
    /* RAM region and offset of each device-writable buffer (iov[out_num +
     * i]): virtq_push marks them dirty once the device has written them */
    MemoryRegion *in_mr[VIRTQ_MAX_SIZE];
    uint64_t in_off[VIRTQ_MAX_SIZE];
} VirtqElem;

/*
 * Host pointer for guest-physical [gpa, gpa+len) if that range lies inside
 * one RAM range of fv (and is writable when `write`), else NULL.  len 0 is
 * refused.  A writable mapping marks the pages dirty.
 */
void *guest_mem_map(FlatView *fv, uint64_t gpa, uint64_t len, bool write);
/* guest_mem_map that also says which RAM region (and offset in it) the
 * range lies in (*mr, *off; only written on success). */
void *guest_mem_map_region(FlatView *fv, uint64_t gpa, uint64_t len, bool write, MemoryRegion **mr,
                           uint64_t *off);

/* Puts the queue in its reset state (not ready, zero addresses/indices). */
void virtq_reset(VirtQueue *vq);
/* Checks the programmed size/alignment; NULL if fine, else the reason. */
const char *virtq_check_config(const VirtQueue *vq, uint16_t num_max);
/* Translates the three rings for one batch; 0, or -1 with *why set. */
int virtq_map(VirtQueue *vq, FlatView *fv, const char **why);
/* True if the driver has made buffers available that were not popped.
 * Before saying no, with EVENT_IDX, asks for a kick on the next buffer
 * (avail_event) and looks again.  Needs virtq_map; a hostile avail index
 * is reported by virtq_pop. */
bool virtq_has_avail(VirtQueue *vq);
/*
 * Takes the next available chain into *e, following an indirect table if
 * negotiated.  1: got one; 0: queue empty (with EVENT_IDX, avail_event now
 * asks for a kick on the next buffer); -1: the driver broke the protocol
 * (*why says how; nothing was consumed).  Needs virtq_map in the same batch.
 */
int virtq_pop(VirtQueue *vq, FlatView *fv, VirtqElem *e, const char **why);
/* Gives back the chain the last virtq_pop took: it stays in the avail
 * ring and the next pop takes it again (a device that may not serve it
 * yet, e.g. a rate limit).  Only right after that pop, in the same batch. */
void virtq_unpop(VirtQueue *vq);
/* Publishes e as used with `len` bytes written by the device, marking the
 * used entry, the used index and e's device-writable buffers dirty after
 * they were written (a dirty-page harvest in between cannot lose them). */
void virtq_push(VirtQueue *vq, const VirtqElem *e, uint32_t len);
/* Whether the used entries pushed since the last call deserve an
 * interrupt: with EVENT_IDX, iff they crossed the driver's used_event (or
 * no call since a reset or load said so); without, unless the driver set
 * VIRTQ_AVAIL_F_NO_INTERRUPT.  Call once after a batch of pushes. */
bool virtq_need_interrupt(VirtQueue *vq);

/* Copies up to len bytes from iov (skipping `skip` bytes) into buf; returns
 * the count copied. */
size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t skip, void *buf, size_t len);
/* Copies up to len bytes from buf into iov (starting `skip` bytes in);
 * returns the count copied. */
size_t iov_from_buf(const struct iovec *iov, unsigned n, size_t skip, const void *buf, size_t len);
/* Fills dst with the part [skip, skip+len) of iov; returns the entry count
 * (at most max; a part that does not fit is left out). */
unsigned iov_slice(const struct iovec *iov, unsigned n, size_t skip, size_t len, struct iovec *dst,
                   unsigned max);

#endif /* STRATA_DEVICES_VIRTQUEUE_H */
