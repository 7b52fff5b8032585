/* SPDX-License-Identifier: MIT */
/*
 * The virtio-vsock packet protocol (virtio 1.2, 5.10), as pure functions
 * with no I/O: the 44-byte little-endian packet header, the checks a
 * packet from the guest must pass, credit arithmetic, the connection table
 * (keyed by (local port, peer port), bounded) and the host side's
 * `CONNECT <port>\n` line.  Unit tested and fuzzed (tests/virtio/).
 */
#ifndef STRATA_DEVICES_VSOCK_PROTO_H
#define STRATA_DEVICES_VSOCK_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VSOCK_HDR_LEN 44
#define VSOCK_HOST_CID 2u
#define VSOCK_MIN_GUEST_CID 3u
#define VSOCK_MAX_GUEST_CID 0xfffffffeu /* 0xffffffff is VMADDR_CID_ANY */
#define VSOCK_TYPE_STREAM 1u
#define VSOCK_MAX_PAYLOAD 65536u /* longest RW payload accepted from the guest */
#define VSOCK_CONN_BUF 65536u    /* buf_alloc strata advertises per connection */
#define VSOCK_MAX_CONNS \
    512u /* connections at once (all states): at most
                                  * 512 x VSOCK_CONN_BUF = 32 MiB buffered */
#define VSOCK_BUCKETS 256u

enum {
    VSOCK_OP_INVALID = 0,
    VSOCK_OP_REQUEST = 1,
    VSOCK_OP_RESPONSE = 2,
    VSOCK_OP_RST = 3,
    VSOCK_OP_SHUTDOWN = 4,
    VSOCK_OP_RW = 5,
    VSOCK_OP_CREDIT_UPDATE = 6,
    VSOCK_OP_CREDIT_REQUEST = 7,
};
#define VSOCK_SHUTDOWN_RCV 1u
#define VSOCK_SHUTDOWN_SEND 2u
#define VSOCK_EVENT_TRANSPORT_RESET 0u

/* struct virtio_vsock_hdr, decoded. */
typedef struct VsockHdr {
    uint64_t src_cid, dst_cid;
    uint32_t src_port, dst_port;
    uint32_t len;
    uint16_t type, op;
    uint32_t flags;
    uint32_t buf_alloc, fwd_cnt;
} VsockHdr;

/* Decodes the VSOCK_HDR_LEN bytes at b. */
void vsock_hdr_decode(const uint8_t *b, VsockHdr *h);
/* Encodes h into the VSOCK_HDR_LEN bytes at b. */
void vsock_hdr_encode(const VsockHdr *h, uint8_t *b);
/*
 * Whether a packet the guest sent (header h, `payload` bytes after the
 * header in its buffer) is well formed for a guest of CID guest_cid: NULL,
 * or why not (wrong src/dst CID, not a stream, unknown op, a payload on
 * anything but RW, len past the buffer or VSOCK_MAX_PAYLOAD, bad shutdown
 * flags).  The device answers such a packet with RST.
 */
const char *vsock_hdr_check(const VsockHdr *h, uint64_t guest_cid, uint64_t payload);

/* Bytes the peer can still take: buf_alloc - (sent - fwd_cnt), all modulo
 * 2^32; 0 when a hostile fwd_cnt would make it more than buf_alloc. */
uint32_t vsock_peer_credit(uint32_t buf_alloc, uint32_t fwd_cnt, uint32_t sent);

/* The connection table: VSOCK_MAX_CONNS slots, found by (local, peer). */
typedef struct VsockTable {
    int16_t bucket[VSOCK_BUCKETS]; /* first slot, -1 = none */
    struct {
        uint32_t local, peer;
        int16_t next; /* next slot in the bucket */
        bool used;
    } ent[VSOCK_MAX_CONNS];
    unsigned count;
} VsockTable;

/* Empties the table. */
void vsock_table_init(VsockTable *t);
/* The slot holding (local, peer), or -1. */
int vsock_table_find(const VsockTable *t, uint32_t local, uint32_t peer);
/* Adds (local, peer) in a free slot and returns it; -1 if the pair is
 * there already or the table is full. */
int vsock_table_insert(VsockTable *t, uint32_t local, uint32_t peer);
/* A free slot reserved for a host connection whose ports are not known
 * yet (see vsock_table_set_key); -1 if the table is full. */
int vsock_table_reserve(VsockTable *t);
/* Gives reserved or used slot i the key (local, peer); -1 if another slot
 * has it. */
int vsock_table_set_key(VsockTable *t, int i, uint32_t local, uint32_t peer);
/* Frees slot i. */
void vsock_table_remove(VsockTable *t, int i);

/* Longest `CONNECT <port>\n` line accepted. */
#define VSOCK_CONNECT_LINE_MAX 32
/* Parses the host client's first line, [buf, buf+len) (no NUL needed):
 * 1 with *port set if it is a whole `CONNECT <port>\n` (decimal, no sign,
 * below 2^32), 0 if it may still become one, -1 if it cannot. */
int vsock_parse_connect(const char *buf, size_t len, uint32_t *port);

#endif /* STRATA_DEVICES_VSOCK_PROTO_H */
