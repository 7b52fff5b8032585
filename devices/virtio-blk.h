/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk (virtio 1.2, 5.2) over virtio-mmio, backed by a file or block
 * device through io_uring (liburing; a ring restricted to READV, WRITEV and
 * FSYNC on the disk alone, see devices/uring.h; plain preadv/pwritev/
 * fdatasync when the kernel cannot give such a ring).  VIRTIO_BLK_T_IN, OUT,
 * FLUSH and GET_ID; capacity in the config space (the file size in 512-byte
 * sectors, a partial last sector is not visible); readonly => VIRTIO_BLK_F_RO
 * and OUT fails with VIRTIO_BLK_S_IOERR.
 *
 * 1 to VIRTIO_BLK_MAX_QUEUES request queues (--disk num-queues); with more
 * than one the device offers VIRTIO_BLK_F_MQ and says how many in the
 * config space's num_queues (QEMU offers it likewise only for more than
 * one, so a one-queue disk looks and saves exactly as before).  Each queue
 * is served on its own notification; all of them share the disk, its
 * io_uring ring, its counters and its rate limit.
 *
 * Requests are taken from the queue in batches of up to VIRTIO_BLK_BATCH,
 * submitted together and completed before the next batch (on the device
 * event loop, never on a vCPU).  Malformed requests (no header, no status
 * byte, out-of-range sectors, lengths not a multiple of 512) complete with
 * an error status or, when there is nowhere to put a status, with 0 bytes.
 *
 * A rate limit (virtio_blk_set_rate_limit: bytes/s of data, requests/s,
 * token buckets with bursts, devices/ratelimit.h) is the disk's, whatever
 * queue a request comes on, and is checked for each request as it is
 * taken: when the buckets say no, the request is given back to its avail
 * ring and no queue is taken from until a timer on the event loop says the
 * tokens are there (kicks meanwhile change nothing); the timer then looks
 * at every queue, starting from a different one each time.
 */
#ifndef STRATA_DEVICES_VIRTIO_BLK_H
#define STRATA_DEVICES_VIRTIO_BLK_H

#include <liburing.h>

#include "devices/ratelimit.h"
#include "devices/virtio-mmio.h"

#define VIRTIO_ID_BLOCK 2
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_BLK_F_MQ 12

#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8

#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2

#define VIRTIO_BLK_ID_BYTES 20
#define VIRTIO_BLK_CONFIG_LEN 64
#define VIRTIO_BLK_CONFIG_NUM_QUEUES 34 /* u16 in the config space (with F_MQ) */
/* The most request queues a disk may have (each is one more virtio-mmio
 * QueueSel value and ioeventfd). */
#define VIRTIO_BLK_MAX_QUEUES 16
#define VIRTIO_BLK_BATCH 32
#define VIRTIO_BLK_STATE_MAGIC 0x4b4c4256u /* "VBLK" */
#define VIRTIO_BLK_STATE_VERSION 1

/* What the device did with the guest's requests, counted as each
 * completes (QEMU's BlockDeviceStats names where they apply).  A request
 * refused before any I/O (out of range, not a multiple of 512, a write to
 * a read-only disk) is invalid; one whose I/O failed or came up short is
 * failed; only successful ones count in rd/wr/flush_operations and bytes. */
typedef struct VirtioBlkStats {
    uint64_t rd_bytes, wr_bytes;
    uint64_t rd_operations, wr_operations, flush_operations;
    uint64_t failed_rd_operations, failed_wr_operations, failed_flush_operations;
    uint64_t invalid_rd_operations, invalid_wr_operations;
    uint64_t get_id_operations;      /* VIRTIO_BLK_T_GET_ID answered */
    uint64_t unsupported_operations; /* another request type (VIRTIO_BLK_S_UNSUPP) */
    uint64_t malformed_requests;     /* no header or no status byte: completed with 0 bytes */
    uint64_t wr_highest_offset;      /* end of the furthest successful write, bytes */
    uint64_t throttled;              /* times the queue waited for rate-limit tokens */
    uint64_t throttled_ns;           /* how long it waited in all (ended waits) */
} VirtioBlkStats;

typedef struct VirtioBlkReq {
    int op;          /* 0 none, else an I/O to submit */
    int type;        /* VIRTIO_BLK_T_*, -1 if malformed */
    uint64_t offset; /* bytes */
    uint64_t len;    /* data bytes */
    unsigned ndata;
    uint8_t *status_p; /* NULL: malformed, complete with 0 bytes */
    uint8_t status;
    uint32_t used_len; /* on success */
    int res;           /* I/O result */
    struct iovec data[VIRTQ_MAX_SIZE];
} VirtioBlkReq;

typedef struct VirtioBlk {
    VirtioMmio t; /* first: the transport */
    int fd;
    bool readonly;
    uint64_t capacity; /* 512-byte sectors */
    char id[VIRTIO_BLK_ID_BYTES];
    uint8_t config[VIRTIO_BLK_CONFIG_LEN];
    struct io_uring ring;
    bool have_ring;
    /* Written by the thread that completes requests (under the transport's
     * lock), read by anyone: relaxed atomics (virtio_blk_get_stats).  Kept
     * across device resets, as QEMU keeps a drive's. */
    VirtioBlkStats stats;
    /* the rate limit (under the transport's lock); the timer that ends a
     * wait for tokens (NULL without an event loop: no limit possible) */
    RateLimiter rl;
    EvloopTimer *rl_timer;
    bool throttled; /* waiting for tokens: no queue is taken from */
    uint64_t throttled_since_ns;
    unsigned resume_next; /* the queue the next end of a wait looks at first */
    VirtqElem elems[VIRTIO_BLK_BATCH];
    VirtioBlkReq reqs[VIRTIO_BLK_BATCH];
} VirtioBlk;

/* What a virtio-blk saves (section VIRTIO_BLK_STATE_MAGIC,
 * virtio_blk_state_section): the transport (every queue), then the disk it
 * was made for, which the destination's must match (so must its queue
 * count). */
typedef struct VirtioBlkStateData {
    VirtioMmioStateData t;
    uint64_t capacity; /* 512-byte sectors */
    uint8_t readonly;  /* 0 or 1 */
} VirtioBlkStateData;

/* Its section: magic, version and field table. */
extern const StateSection virtio_blk_state_section;

/*
 * Opens `path` (read-only if readonly) and sets up the device with
 * num_queues request queues (1 to VIRTIO_BLK_MAX_QUEUES; see
 * virtio_mmio_init for the rest).  0, or a negative errno with one line in
 * err naming the disk ("disk path=/x: No such file or directory").
 */
int virtio_blk_init(VirtioBlk *d, const VirtioEnv *env, const char *path, bool readonly,
                    unsigned num_queues, char *err, size_t errlen);
/* Frees what init made and closes the file (unmap the region first). */
void virtio_blk_destroy(VirtioBlk *d);
/* A snapshot of d's counters, from any thread without a lock (each
 * counter read atomically; a request completing meanwhile may show in some
 * and not yet in others). */
void virtio_blk_get_stats(const VirtioBlk *d, VirtioBlkStats *out);

/* Sets d's rate limit (the buckets start full; a queue waiting for tokens
 * looks again at once); any thread.  0, or -ENOTSUP when d has no event
 * loop. */
int virtio_blk_set_rate_limit(VirtioBlk *d, const RateLimitConfig *cfg);
/* d's rate limit as set (any thread). */
void virtio_blk_get_rate_limit(VirtioBlk *d, RateLimitConfig *out);

/* Reset, save, load and destroy for a board's device list (devices/device.h). */
extern const DeviceOps virtio_blk_device_ops;

#endif /* STRATA_DEVICES_VIRTIO_BLK_H */
