/* SPDX-License-Identifier: MIT */
/*
 * virtio-net (virtio 1.2, 5.1) over virtio-mmio, backed by a TAP device
 * (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, 12-byte vnet header) or by any
 * message-preserving fd that speaks the same framing (unit tests use a
 * datagram socketpair).  Queue 0 receives, queue 1 transmits; the MAC is in
 * the config space (VIRTIO_NET_F_MAC); no offloads are offered, so every
 * header goes out zeroed and comes in as "no checksum, no GSO, 1 buffer".
 *
 * The backend fd is watched by the device event loop while the receive
 * queue has buffers; when it runs dry, the fd is left alone until the
 * driver notifies the receive queue again.
 *
 * A rate limit (virtio_net_set_rate_limit: frame bytes/s and packets/s,
 * token buckets with bursts, devices/ratelimit.h) applies to each direction
 * on its own, with the same figures: transmit takes a frame from the guest
 * only when the buckets allow it (else it stays in the avail ring); receive
 * reads the backend only while they are not empty (a frame's bytes are
 * charged once read, which may leave the bytes bucket in debt).  A timer
 * on the event loop ends each wait; nothing is dropped for the limit.
 */
#ifndef STRATA_DEVICES_VIRTIO_NET_H
#define STRATA_DEVICES_VIRTIO_NET_H

#include "devices/ratelimit.h"
#include "devices/virtio-mmio.h"

#define VIRTIO_ID_NET 1
#define VIRTIO_NET_F_MAC 5
#define VIRTIO_NET_HDR_LEN 12
#define VIRTIO_NET_MAX_FRAME 65550u /* largest frame accepted */
#define VIRTIO_NET_CONFIG_LEN 8
#define VIRTIO_NET_RXQ 0
#define VIRTIO_NET_TXQ 1
#define VIRTIO_NET_STATE_MAGIC 0x54454e56u /* "VNET" */
#define VIRTIO_NET_STATE_VERSION 1

/* Frames moved, counted as each is handled.  rx: from the backend into
 * the guest; tx: from the guest to the backend.  Bytes are frame bytes
 * without the 12-byte vnet header.  rx_dropped: a frame shorter than the
 * header, or one the guest's buffer could not hold; tx_dropped: a frame
 * too short or too long, or one the backend refused or took in part. */
typedef struct VirtioNetStats {
    uint64_t rx_packets, rx_bytes, rx_dropped;
    uint64_t tx_packets, tx_bytes, tx_dropped;
    /* times each direction waited for rate-limit tokens, and how long in
     * all (ended waits) */
    uint64_t rx_throttled, rx_throttled_ns, tx_throttled, tx_throttled_ns;
} VirtioNetStats;

/* One direction's rate limit and its wait (under the transport's lock). */
typedef struct VirtioNetLimit {
    RateLimiter rl;
    bool waiting;
    uint64_t since_ns;
} VirtioNetLimit;

typedef struct VirtioNet {
    VirtioMmio t; /* first: the transport */
    int fd;       /* TAP (owned) */
    Evloop *loop;
    bool fd_watched; /* registered with the loop */
    bool rx_polling; /* EPOLLIN enabled */
    uint8_t mac[6];
    uint8_t config[VIRTIO_NET_CONFIG_LEN];
    /* written under the transport's lock, read by anyone with relaxed
     * atomics (virtio_net_get_stats); kept across device resets */
    VirtioNetStats stats;
    VirtioNetLimit rx_limit, tx_limit;
    EvloopTimer *rl_timer; /* ends the waits; NULL without a loop */
    uint64_t timer_due_ns; /* when it fires; 0 = disarmed */
    VirtqElem elem;
    uint8_t buf[VIRTIO_NET_HDR_LEN + VIRTIO_NET_MAX_FRAME];
} VirtioNet;

/* What a virtio-net saves (section VIRTIO_NET_STATE_MAGIC,
 * virtio_net_state_section): the transport, then the MAC. */
typedef struct VirtioNetStateData {
    VirtioMmioStateData t;
    uint8_t mac[6];
} VirtioNetStateData;

/* Its section: magic, version and field table. */
extern const StateSection virtio_net_state_section;

/*
 * Opens TAP interface `name` (created if absent) with a 12-byte vnet header,
 * non-blocking.  Returns the fd, or a negative errno with one line in err
 * ("net tap=tap0: Operation not permitted").
 */
int virtio_net_open_tap(const char *name, char *err, size_t errlen);
/* Parses "52:54:00:12:34:56" into mac; 0 or -1. */
int virtio_net_parse_mac(const char *s, uint8_t mac[6]);
/*
 * Sets up the device over fd (taken over: closed by destroy, also on
 * failure) with the given MAC (see virtio_mmio_init for the rest).  0 or a
 * negative errno with err set.
 */
int virtio_net_init(VirtioNet *d, const VirtioEnv *env, int fd, const uint8_t mac[6], char *err,
                    size_t errlen);
/* Frees what init made and closes the fd (unmap the region first). */
void virtio_net_destroy(VirtioNet *d);
/* A snapshot of d's counters, from any thread without a lock. */
void virtio_net_get_stats(const VirtioNet *d, VirtioNetStats *out);

/* Sets d's rate limit, for each direction (the buckets start full; a
 * direction waiting for tokens looks again at once); any thread.  0, or
 * -ENOTSUP when d has no event loop. */
int virtio_net_set_rate_limit(VirtioNet *d, const RateLimitConfig *cfg);
/* d's rate limit as set (any thread). */
void virtio_net_get_rate_limit(VirtioNet *d, RateLimitConfig *out);

/* Reset, save, load and destroy for a board's device list (devices/device.h). */
extern const DeviceOps virtio_net_device_ops;

#endif /* STRATA_DEVICES_VIRTIO_NET_H */
