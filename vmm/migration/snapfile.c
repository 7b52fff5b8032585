/* SPDX-License-Identifier: MIT */
/* The snapshot file's header (see snapfile.h and docs/snapshot.md). */
#include "vmm/migration/snapfile.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "memory/state-stream.h"

/* Layout of page 0 (little endian):
 *   0  magic[8]     8 version    12 nblocks   16 state_off   24 state_len
 *   32 blocks[4] x 48: name[32], size u64, offset u64
 *   4092 CRC-32 of bytes 0..4091 */
enum { OFF_VERSION = 8, OFF_NBLOCKS = 12, OFF_STATE = 16, OFF_STATE_LEN = 24, OFF_BLOCKS = 32 };
#define BLOCK_LEN (SNAP_NAME_MAX + 16u)
#define OFF_CRC (SNAP_HEADER_LEN - 4u)

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

int snap_layout(SnapHeader *h)
{
    uint64_t off = SNAP_HEADER_LEN;
    if (h->nblocks > SNAP_MAX_BLOCKS)
        return -1;
    for (unsigned i = 0; i < h->nblocks; i++) {
        SnapBlock *b = &h->blocks[i];
        if (strlen(b->name) > SNAP_NAME_MAX || b->size % SNAP_PAGE_SIZE ||
            b->size > UINT64_MAX / 2 - off)
            return -1;
        b->offset = off;
        off += b->size;
    }
    h->version = SNAP_VERSION;
    h->state_off = off;
    return 0;
}

void snap_header_encode(const SnapHeader *h, uint8_t out[SNAP_HEADER_LEN])
{
    memset(out, 0, SNAP_HEADER_LEN);
    static const uint8_t magic[8] = { 'S', 'T', 'R', 'A', 'S', 'N', 'A', 'P' }; /* SNAP_MAGIC */
    memcpy(out, magic, sizeof(magic));
    put32(out + OFF_VERSION, h->version);
    put32(out + OFF_NBLOCKS, h->nblocks);
    put64(out + OFF_STATE, h->state_off);
    put64(out + OFF_STATE_LEN, h->state_len);
    for (unsigned i = 0; i < h->nblocks && i < SNAP_MAX_BLOCKS; i++) {
        uint8_t *b = out + OFF_BLOCKS + i * BLOCK_LEN;
        for (size_t c = 0; c < SNAP_NAME_MAX && h->blocks[i].name[c]; c++)
            b[c] = (uint8_t)h->blocks[i].name[c]; /* NUL-padded, not terminated */
        put64(b + SNAP_NAME_MAX, h->blocks[i].size);
        put64(b + SNAP_NAME_MAX + 8, h->blocks[i].offset);
    }
    put32(out + OFF_CRC, state_crc32(out, OFF_CRC));
}

static int bad(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int bad(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

#define U(x) ((unsigned long long)(x))

int snap_header_decode(SnapHeader *h, const uint8_t *buf, size_t len, uint64_t file_size, char *err,
                       size_t errlen)
{
    memset(h, 0, sizeof(*h));
    if (len < SNAP_HEADER_LEN || file_size < SNAP_HEADER_LEN)
        return bad(err, errlen, "%llu bytes: too short for a snapshot (its header alone is %u)",
                   U(file_size), SNAP_HEADER_LEN);
    if (memcmp(buf, SNAP_MAGIC, 8)) {
        snprintf(err, errlen, "not a strata snapshot (no %s magic%s)", SNAP_MAGIC,
                 memcmp(buf, "STRATAMG", 8) ? "" : "; a migration stream, not a snapshot");
        return -1;
    }
    h->version = get32(buf + OFF_VERSION);
    if (h->version != SNAP_VERSION)
        return bad(err, errlen, "snapshot format version %u; this strata reads version %u",
                   h->version, SNAP_VERSION);
    uint32_t crc = get32(buf + OFF_CRC), want = state_crc32(buf, OFF_CRC);
    if (crc != want)
        return bad(err, errlen, "the header is corrupt (CRC-32 0x%08x, its bytes give 0x%08x)", crc,
                   want);
    h->nblocks = get32(buf + OFF_NBLOCKS);
    h->state_off = get64(buf + OFF_STATE);
    h->state_len = get64(buf + OFF_STATE_LEN);
    if (h->nblocks == 0 || h->nblocks > SNAP_MAX_BLOCKS)
        return bad(err, errlen, "%u RAM blocks (1 to %u expected)", h->nblocks, SNAP_MAX_BLOCKS);
    uint64_t end = SNAP_HEADER_LEN; /* blocks follow each other in order */
    for (unsigned i = 0; i < h->nblocks; i++) {
        const uint8_t *b = buf + OFF_BLOCKS + i * BLOCK_LEN;
        SnapBlock *k = &h->blocks[i];
        memcpy(k->name, b, SNAP_NAME_MAX);
        k->name[SNAP_NAME_MAX] = 0;
        bool printable = k->name[0] != 0;
        for (size_t c = 0; c < strlen(k->name); c++)
            printable &= k->name[c] > 0x20 && k->name[c] < 0x7f;
        for (size_t c = strlen(k->name); c < SNAP_NAME_MAX; c++)
            printable &= b[c] == 0;
        if (!printable)
            return bad(err, errlen, "RAM block %u's name is not a printable, NUL-padded name", i);
        k->size = get64(b + SNAP_NAME_MAX);
        k->offset = get64(b + SNAP_NAME_MAX + 8);
        if (!k->size || k->size % SNAP_PAGE_SIZE || k->offset % SNAP_PAGE_SIZE)
            return bad(err, errlen,
                       "RAM block %u: size and offset must be page multiples, size "
                       "nonzero (size %llu)",
                       i, U(k->size));
        if (k->offset < end)
            return bad(err, errlen, "RAM block %u overlaps what comes before it (offset %llu)", i,
                       U(k->offset));
        if (k->size > file_size || k->offset > file_size - k->size)
            return bad(err, errlen,
                       "truncated: RAM block %u ends past the end of the file (%llu bytes)", i,
                       U(file_size));
        end = k->offset + k->size;
    }
    if (h->state_off < end || h->state_len < 16)
        return bad(err, errlen, "the state records (at %llu, %llu bytes) overlap RAM or are empty",
                   U(h->state_off), U(h->state_len));
    if (h->state_len > file_size || h->state_off > file_size - h->state_len)
        return bad(err, errlen,
                   "truncated: the state records end past the end of the file (%llu "
                   "bytes, at least %llu needed)",
                   U(file_size),
                   U(h->state_len > file_size ? h->state_len : h->state_off + h->state_len));
    return 0;
}
