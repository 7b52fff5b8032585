/* SPDX-License-Identifier: MIT */
/*
 * The migration stream (docs/migration.md): a header, then records
 *
 *   u32 type | u32 id | u32 length | payload[length] | u32 CRC-32
 *
 * (little endian; the CRC covers the 12 header bytes and the payload),
 * over a socket, with an optional bandwidth cap, a cancel flag and byte
 * counters.  Everything read is hostile: lengths are capped per record
 * type before anything is allocated, and every failure says what was
 * wrong and where (record number, byte offset).
 */
#ifndef STRATA_VMM_MIGRATION_STREAM_H
#define STRATA_VMM_MIGRATION_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MIG_MAGIC "STRATAMG" /* 8 bytes, no NUL on the wire */
#define MIG_VERSION 2u       /* 2: the ACK!/ERR! answer to GO!! */
#define MIG_HEADER_LEN 16u   /* magic, u32 version, u32 flags */

enum MigRecordType {
    MIG_REC_CONFIG = 1,  /* JSON machine description (id 0) */
    MIG_REC_RAM = 2,     /* pages of RAM block `id` */
    MIG_REC_ROUND = 3,   /* end of a pre-copy round (id = round) */
    MIG_REC_VMSTATE = 4, /* in-kernel VM state: irqchip, PIT, clock */
    MIG_REC_VCPU = 5,    /* one vCPU's state (id = vCPU index) */
    MIG_REC_DEVICE = 6,  /* one device's state (id = device number) */
    MIG_REC_END = 7,     /* the last record: counts and the run state */
    MIG_REC_TYPE_MAX = 7,
};

#define MIG_PAGE_SIZE 4096u
#define MIG_PAGES_PER_RECORD 256u
/* RAM entry: u64 (page offset in the block | kind), then 4096 bytes for
 * MIG_PAGE_NORMAL. */
#define MIG_PAGE_ZERO 1u
#define MIG_PAGE_NORMAL 2u
#define MIG_PAGE_KIND_MASK 0xfffull
#define MIG_RAM_RECORD_MAX (MIG_PAGES_PER_RECORD * (8u + MIG_PAGE_SIZE))
#define MIG_RECORD_MAX (4u << 20) /* any record's payload */

/* The destination's answers after the END record (u32 each). */
#define MIG_REPLY_READY 0x21594452u /* "RDY!": loaded, waiting for GO */
#define MIG_REPLY_ERROR 0x21525245u /* "ERR!", then u32 length + text */
#define MIG_REPLY_GO 0x21214f47u    /* "GO!!": the source gives the guest away */
#define MIG_REPLY_ACK 0x214b4341u   /* "ACK!": the destination runs the guest now */

typedef struct MigChannel {
    int fd;
    uint64_t max_bandwidth;                 /* bytes/s, 0 = no cap (writer) */
    uint64_t bytes;                         /* payload + framing moved so far */
    uint64_t records;                       /* records moved so far */
    uint64_t window_start_ns, window_bytes; /* bandwidth cap bookkeeping */
    volatile int *cancel;                   /* set: stop at the next chunk (may be NULL) */
    unsigned timeout_ms;                    /* no progress for this long fails (0 = never) */
    uint64_t deadline_ns;                   /* mig_now_ns() past which any wait fails (0 = none) */
    int extra_fd;                           /* also polled; readable = give up (-1 = none) */
    bool file;                              /* fd is a regular file: write/read, no poll */
    char err[256];                          /* why the last call failed */
} MigChannel;

/* A channel over a connected socket (not owned: the caller closes fd). */
void mig_channel_init(MigChannel *ch, int fd);
/* A channel over a regular file at its current offset (a snapshot's
 * state records: docs/snapshot.md); not owned. */
void mig_channel_init_file(MigChannel *ch, int fd);
/* Writes the stream header. 0 or -1 (ch->err). */
int mig_send_header(MigChannel *ch);
/* Reads and checks the stream header. 0 or -1 (ch->err). */
int mig_recv_header(MigChannel *ch);
/* Sends one record (payload may be NULL when len is 0). 0 or -1. */
int mig_send_record(MigChannel *ch, uint32_t type, uint32_t id, const void *payload, uint32_t len);
/* Receives one record into *buf (grown with realloc as needed, up to the
 * type's cap; the caller frees it), checking type, length and CRC.
 * 0 or -1 (ch->err says what was wrong). */
int mig_recv_record(MigChannel *ch, uint32_t *type, uint32_t *id, uint8_t **buf, size_t *cap,
                    uint32_t *len);
/* Raw u32 / bytes (the handover replies). 0 or -1. */
int mig_send_u32(MigChannel *ch, uint32_t v);
int mig_recv_u32(MigChannel *ch, uint32_t *v);
int mig_send_bytes(MigChannel *ch, const void *p, size_t n);
int mig_recv_bytes(MigChannel *ch, void *p, size_t n);

/* The largest payload a record of `type` may carry (0: unknown type). */
uint32_t mig_record_max(uint32_t type);
/* "RAM", "VCPU", ... for messages. */
const char *mig_record_name(uint32_t type);

/* Connects to uri; the fd, or -1 with err set.  numeric_only: a host name
 * is not resolved (a thread that must not open files: the resolver does). */
int mig_connect(const char *uri, bool numeric_only, char *err, size_t errlen);
/* Listens on uri (numeric_only as for mig_connect); the listening fd, or
 * -1 with err set. */
int mig_listen(const char *uri, bool numeric_only, char *err, size_t errlen);

/* Little-endian fields of the stream's records. */
static inline void mig_put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint32_t mig_get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void mig_put_le64(uint8_t *p, uint64_t v)
{
    mig_put_le32(p, (uint32_t)v);
    mig_put_le32(p + 4, (uint32_t)(v >> 32));
}
static inline uint64_t mig_get_le64(const uint8_t *p)
{
    return (uint64_t)mig_get_le32(p) | (uint64_t)mig_get_le32(p + 4) << 32;
}

/* Monotonic clock in ns. */
uint64_t mig_now_ns(void);
/* True if the 4 KiB page at p is all zeros. */
bool mig_page_is_zero(const void *p);
/*
 * Which of the `pages` 4 KiB pages at host address `host` were never
 * touched (neither present nor swapped in /proc/self/pagemap, open as
 * pagemap_fd): such a page reads as zero, and reading it would fault one
 * in.  A calloc'ed bitmap (bit p: page p untouched), or NULL when it cannot
 * tell (no pagemap, a short read, no memory): then assume every page was.
 */
uint64_t *mig_untouched_pages(int pagemap_fd, const void *host, uint64_t pages);

#endif /* STRATA_VMM_MIGRATION_STREAM_H */
