/* SPDX-License-Identifier: MIT */
/*
 * The snapshot file's header (docs/snapshot.md): page 0 of the file says
 * where each RAM block lives (a fixed, page-aligned home per page, so a
 * later round rewrites a page in place and restore maps the block) and
 * where the state records are (the migration stream's header, CONFIG,
 * VMSTATE, VCPU, DEVICE and END records, with no RAM record).  The header
 * is written last, so a file whose save did not finish has none.  The
 * file is hostile input: decoding checks every field against the file's
 * size before anything is mapped.
 */
#ifndef STRATA_VMM_MIGRATION_SNAPFILE_H
#define STRATA_VMM_MIGRATION_SNAPFILE_H

#include <stddef.h>
#include <stdint.h>

#define SNAP_MAGIC "STRASNAP" /* 8 bytes, no NUL in the file */
#define SNAP_VERSION 1u
#define SNAP_HEADER_LEN 4096u /* page 0; RAM starts at a page boundary */
#define SNAP_PAGE_SIZE 4096u
#define SNAP_MAX_BLOCKS 4u
#define SNAP_NAME_MAX 32u /* a block's name, NUL-padded */

typedef struct SnapBlock {
    char name[SNAP_NAME_MAX + 1];
    uint64_t size;   /* bytes, a multiple of SNAP_PAGE_SIZE */
    uint64_t offset; /* where page 0 of the block is in the file */
} SnapBlock;

typedef struct SnapHeader {
    uint32_t version;
    uint32_t nblocks;
    SnapBlock blocks[SNAP_MAX_BLOCKS];
    uint64_t state_off, state_len; /* the state records */
} SnapHeader;

/* Lays out n blocks (names and sizes set) after the header, each at a
 * page-aligned offset; sets state_off to the end of the last one.  0, or
 * -1 if a name is too long or the sizes overflow. */
int snap_layout(SnapHeader *h);
/* The header's SNAP_HEADER_LEN bytes (CRC-32 in the last 4). */
void snap_header_encode(const SnapHeader *h, uint8_t out[SNAP_HEADER_LEN]);
/* Decodes and checks a header read from a file of file_size bytes: magic,
 * version, CRC, block names, sizes and offsets (page-aligned, in the file,
 * not overlapping each other, the header or the state), state bounds.
 * 0, or -1 with one line saying what is wrong in err. */
int snap_header_decode(SnapHeader *h, const uint8_t *buf, size_t len, uint64_t file_size, char *err,
                       size_t errlen);

#endif /* STRATA_VMM_MIGRATION_SNAPFILE_H */
