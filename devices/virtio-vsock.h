/* SPDX-License-Identifier: MIT */
/*
 * virtio-vsock (virtio 1.2, 5.10) over virtio-mmio, without vhost: the
 * device event loop moves the packets between the guest's queues and Unix
 * sockets on the host (Firecracker's scheme).
 *
 * - The guest connects to host port P: strata connects to the Unix socket
 *   `PATH_P` (uds PATH, e.g. /tmp/v.sock_1234) and answers RESPONSE, or
 *   RST when nothing listens there.
 * - A host process connects to PATH (the listening socket, made by the
 *   VMM and handed to the device) and sends `CONNECT <port>\n`: strata
 *   sends REQUEST to guest port <port> from a local port of its own; the
 *   guest's RESPONSE makes strata write `OK <localport>\n` to the client,
 *   its RST closes the client.  A line that is not that closes the client.
 * - Then bytes flow both ways (RW) under the spec's credit rules; SHUTDOWN
 *   and RST end connections; the host side closing sends SHUTDOWN, then RST
 *   once the guest closed too.
 *
 * Bounded memory: guest-to-host bytes the host socket does not take at once
 * wait in a per-connection buffer of VSOCK_CONN_BUF bytes, which is the
 * buf_alloc strata advertises; fwd_cnt moves only as the host socket takes
 * bytes, so a host that stops reading stops the guest's credit.  A guest
 * that sends past its credit gets RST.  Host-to-guest bytes are read from
 * the socket straight into the guest's rx buffers and only while the guest
 * has credit and rx buffers: else strata stops polling that socket for
 * input (the kernel's socket buffer holds the rest).  At most
 * VSOCK_MAX_CONNS connections (more are refused: RST, or the host client
 * is closed).
 *
 * Hostile input: a packet that fails vsock_hdr_check, or that does not fit
 * its connection's state (unknown connection, RESPONSE not awaited, RW past
 * the credit, REQUEST for an existing connection), is answered with RST
 * (and ends the connection it names), except that one whose source CID is
 * not the guest's gets no RST; a tx chain shorter than a header is
 * dropped.  Device-writable tx buffers, device-readable rx or event buffers,
 * or rx buffers shorter than a header break the device (DEVICE_NEEDS_RESET).
 *
 * Migration and snapshots carry the transport and the CID (section
 * VIRTIO_VSOCK_STATE_MAGIC), not connections: after a load the device sends
 * VIRTIO_VSOCK_EVENT_TRANSPORT_RESET on the event queue, which tells the
 * guest that all its connections are gone and to read its CID again (the
 * destination's --vsock cid is the one used).  A driver reset closes all
 * connections too.
 *
 * Queues: 0 rx, 1 tx, 2 event.  Config: le64 guest_cid.
 */
#ifndef STRATA_DEVICES_VIRTIO_VSOCK_H
#define STRATA_DEVICES_VIRTIO_VSOCK_H

#include <sys/un.h>

#include "devices/virtio-mmio.h"
#include "devices/vsock-proto.h"

#define VIRTIO_ID_VSOCK 19
#define VIRTIO_VSOCK_CONFIG_LEN 8
#define VIRTIO_VSOCK_STATE_MAGIC 0x4b535356u /* "VSSK" */
#define VIRTIO_VSOCK_STATE_VERSION 1
#define VIRTIO_VSOCK_PENDING_RST 64 /* RSTs for no connection, queued */

typedef struct VirtioVsock VirtioVsock;

/* One connection slot (the slots live as long as the device: an event
 * handler that fires late finds a closed or reused slot, never freed
 * memory). */
typedef struct VsockConn {
    VirtioVsock *dev;
    int fd; /* -1: free */
    uint8_t state;
    uint32_t local_port, peer_port;
    uint32_t pending;        /* control packets to send (bits of 1 << op) */
    uint32_t shutdown_flags; /* of the SHUTDOWN to send */
    bool readable;           /* the host socket may have input (not polled then) */
    bool host_eof;           /* the host side sent no more (SHUTDOWN sent or due) */
    uint8_t guest_shut;      /* VSOCK_SHUTDOWN_* the guest sent */
    uint32_t watched;        /* poll bits now asked of the loop */
    uint32_t peer_buf_alloc, peer_fwd_cnt;
    uint32_t rx_cnt;            /* payload bytes sent to the guest */
    uint32_t fwd_cnt;           /* guest bytes taken by the host socket */
    uint32_t last_fwd_cnt_sent; /* fwd_cnt the guest last heard */
    uint8_t *txbuf;             /* VSOCK_CONN_BUF bytes, or NULL */
    uint32_t txoff, txlen;      /* waiting bytes: txbuf[txoff, txoff+txlen) */
    char line[VSOCK_CONNECT_LINE_MAX];
    uint8_t line_len;
} VsockConn;

/* Counters (statistics, not saved). */
typedef struct VirtioVsockStats {
    uint64_t conns_guest, conns_host; /* opened by each side */
    uint64_t rst_sent, bad_packets, refused;
    uint64_t tx_bytes, rx_bytes; /* guest to host, host to guest */
    uint64_t pending_rst_dropped;
} VirtioVsockStats;

struct VirtioVsock {
    VirtioMmio t; /* first: the transport */
    uint64_t cid;
    uint8_t config[VIRTIO_VSOCK_CONFIG_LEN];
    struct sockaddr_un uds; /* PATH; guest connects go to PATH_<port> */
    int listen_fd;          /* listening on PATH (owned), or -1 */
    VsockTable table;
    VsockConn conn[VSOCK_MAX_CONNS];
    unsigned rr; /* where the next rx round starts */
    struct {
        uint32_t local, peer;
    } rst[VIRTIO_VSOCK_PENDING_RST];
    unsigned nrst;
    uint32_t next_local_port;
    bool reset_event; /* TRANSPORT_RESET to send */
    VirtqElem elem;
    VirtioVsockStats stats;
};

/* What a virtio-vsock saves: the transport and the CID. */
typedef struct VirtioVsockStateData {
    VirtioMmioStateData t;
    uint64_t cid;
} VirtioVsockStateData;

/* Its section: magic, version and field table. */
extern const StateSection virtio_vsock_state_section;

/*
 * Sets up the device with guest CID cid (>= 3) and the Unix socket path
 * `uds` (at most sizeof(sun_path) - 12 bytes, room for `_<port>`); listen_fd
 * is a socket already listening on uds (the device owns it from now on,
 * even on failure), or -1 for no host-initiated connections.  Needs an
 * event loop in env.  0 or -errno.
 */
int virtio_vsock_init(VirtioVsock *d, const VirtioEnv *env, uint64_t cid, const char *uds,
                      int listen_fd);
/* Closes every connection and frees what init made (unmap the region
 * first, with the loop stopped or not running handlers). */
void virtio_vsock_destroy(VirtioVsock *d);
/* The counters; takes the lock. */
VirtioVsockStats virtio_vsock_stats(VirtioVsock *d);
/* Open connections; takes the lock. */
unsigned virtio_vsock_conn_count(VirtioVsock *d);

/* Reset, save, load and destroy for a board's device list. */
extern const DeviceOps virtio_vsock_device_ops;

#endif /* STRATA_DEVICES_VIRTIO_VSOCK_H */
