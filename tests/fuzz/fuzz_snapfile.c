/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the snapshot file's header (vmm/migration/snapfile.c,
 * docs/snapshot.md), the part of a snapshot read before anything is
 * mapped.  Input: 8 bytes of file size (little endian), then the header's
 * bytes (short inputs are zero-padded to a page, as a short read leaves
 * the buffer).  To get past the CRC at all, the target also decodes a
 * copy whose CRC is resealed.  An accepted header must keep what the
 * loader maps by: every block and the state records inside the file, in
 * order, page-aligned, not overlapping.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "memory/state-stream.h"
#include "vmm/migration/snapfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const SnapHeader *h, uint64_t file_size)
{
    uint64_t prev = SNAP_HEADER_LEN;
    if (h->nblocks < 1 || h->nblocks > SNAP_MAX_BLOCKS)
        abort();
    for (unsigned i = 0; i < h->nblocks; i++) {
        const SnapBlock *b = &h->blocks[i];
        if (b->offset < prev || b->offset % SNAP_PAGE_SIZE || !b->size ||
            b->size % SNAP_PAGE_SIZE || b->offset > file_size || b->size > file_size - b->offset ||
            strlen(b->name) > SNAP_NAME_MAX || !b->name[0])
            abort();
        prev = b->offset + b->size;
    }
    if (h->state_off < prev || h->state_off > file_size || h->state_len > file_size - h->state_off)
        abort();
}

static void one(const uint8_t *hdr, size_t len, uint64_t file_size)
{
    SnapHeader h;
    char err[300];
    if (snap_header_decode(&h, hdr, len, file_size, err, sizeof(err)) == 0)
        check(&h, file_size);
    else if (!err[0])
        abort(); /* a refusal always says why */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t page[SNAP_HEADER_LEN];
    uint64_t file_size = 0;
    for (size_t i = 0; i < 8 && i < size; i++)
        file_size |= (uint64_t)data[i] << (8 * i);
    size_t n = size > 8 ? size - 8 : 0;
    if (n > sizeof(page))
        n = sizeof(page);
    memset(page, 0, sizeof(page));
    if (n)
        memcpy(page, data + 8, n);
    one(page, sizeof(page), file_size);
    uint32_t crc = state_crc32(page, SNAP_HEADER_LEN - 4);
    for (int i = 0; i < 4; i++)
        page[SNAP_HEADER_LEN - 4 + i] = (uint8_t)(crc >> (8 * i));
    one(page, sizeof(page), file_size);
    return 0;
}
