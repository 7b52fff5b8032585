/* SPDX-License-Identifier: MIT */
/*
 * Dirty-page tracking: one bitmap of 4 KiB pages per client per RAM region,
 * filled by userspace writes (address_space_write, set_dirty) and by
 * accelerators through log_sync.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "memory/memory-internal.h"

#define BITS_PER_LONG (8 * sizeof(unsigned long))

static MemoryRegion *ram_target(MemoryRegion *mr, uint64_t *addr)
{
    while (mr && mr->alias) {
        *addr += mr->alias_offset;
        mr = mr->alias;
    }
    return mr;
}

int memory_region_set_log(MemoryRegion *mr, bool log, unsigned client)
{
    if (client >= DIRTY_MEMORY_NUM || client == 2) {
        return mem_error(mr->ctx, -EINVAL, "set_log '%s': no dirty client %u", mr->name, client);
    }
    if (!mr->ram && !mr->rom_device) {
        return mem_error(mr->ctx, -EINVAL, "set_log '%s': not a RAM region", mr->name);
    }
    uint8_t bit = (uint8_t)(1u << client);
    if (!!(mr->dirty_log_mask & bit) == log) {
        return 0;
    }
    if (log && !mr->dirty[client]) {
        size_t words = (mr->dirty_pages + BITS_PER_LONG - 1) / BITS_PER_LONG;
        mr->dirty[client] = calloc(words ? words : 1, sizeof(unsigned long));
        if (!mr->dirty[client]) {
            return mem_error(mr->ctx, -ENOMEM, "set_log '%s': out of memory", mr->name);
        }
    }
    mem_note_region(mr);
    mr->dirty_log_mask = log ? (mr->dirty_log_mask | bit) : (mr->dirty_log_mask & ~bit);
    mem_schedule_commit(mr->ctx);
    return 0;
}

uint8_t memory_region_get_dirty_log_mask(const MemoryRegion *mr)
{
    return mr->dirty_log_mask;
}

/* Clamp [addr, addr+size) to the region; returns false if empty. */
static bool page_span(const MemoryRegion *mr, uint64_t addr, uint64_t size, uint64_t *first,
                      uint64_t *last)
{
    if (size == 0 || (Int128)addr >= mr->size) {
        return false;
    }
    Int128 end = i128_min((Int128)addr + size, mr->size);
    *first = addr >> MEMORY_PAGE_SHIFT;
    *last = (uint64_t)((end - 1) >> MEMORY_PAGE_SHIFT);
    if (*last >= mr->dirty_pages) {
        *last = mr->dirty_pages - 1;
    }
    return *first <= *last;
}

bool memory_region_get_dirty(MemoryRegion *mr, uint64_t addr, uint64_t size, unsigned client)
{
    mr = ram_target(mr, &addr);
    uint64_t first, last;
    if (!mr || client >= DIRTY_MEMORY_NUM || !mr->dirty[client] ||
        !page_span(mr, addr, size, &first, &last)) {
        return false;
    }
    const unsigned long *bm = mr->dirty[client];
    for (uint64_t p = first; p <= last; p++) {
        if (__atomic_load_n(&bm[p / BITS_PER_LONG], __ATOMIC_RELAXED) &
            (1ul << (p % BITS_PER_LONG))) {
            return true;
        }
    }
    return false;
}

static void set_pages(MemoryRegion *mr, uint64_t first, uint64_t last)
{
    for (unsigned c = 0; c < DIRTY_MEMORY_NUM; c++) {
        unsigned long *bm = mr->dirty[c];
        if (!bm || !(mr->dirty_log_mask & (1u << c))) {
            continue;
        }
        for (uint64_t p = first; p <= last; p++) {
            __atomic_fetch_or(&bm[p / BITS_PER_LONG], 1ul << (p % BITS_PER_LONG), __ATOMIC_RELAXED);
        }
    }
}

void memory_region_set_dirty(MemoryRegion *mr, uint64_t addr, uint64_t size)
{
    mr = ram_target(mr, &addr);
    uint64_t first, last;
    if (mr && mr->dirty_log_mask && page_span(mr, addr, size, &first, &last)) {
        set_pages(mr, first, last);
    }
}

void memory_region_set_dirty_bitmap(MemoryRegion *mr, uint64_t offset, const uint64_t *bitmap,
                                    uint64_t npages)
{
    mr = ram_target(mr, &offset);
    if (!mr || !mr->dirty_log_mask) {
        return;
    }
    uint64_t base = offset >> MEMORY_PAGE_SHIFT;
    for (uint64_t w = 0; w < (npages + 63) / 64; w++) {
        uint64_t bits = bitmap[w];
        while (bits) {
            uint64_t p = w * 64 + (uint64_t)__builtin_ctzll(bits);
            bits &= bits - 1;
            if (p < npages && base + p < mr->dirty_pages) {
                set_pages(mr, base + p, base + p);
            }
        }
    }
}

void memory_region_reset_dirty(MemoryRegion *mr, uint64_t addr, uint64_t size, unsigned client)
{
    mr = ram_target(mr, &addr);
    uint64_t first, last;
    if (!mr || client >= DIRTY_MEMORY_NUM || !mr->dirty[client] ||
        !page_span(mr, addr, size, &first, &last)) {
        return;
    }
    unsigned long *bm = mr->dirty[client];
    uint64_t p = first;
    while (p <= last) {
        uint64_t w = p / BITS_PER_LONG, bit = p % BITS_PER_LONG;
        uint64_t n = BITS_PER_LONG - bit;
        if (n > last - p + 1) {
            n = last - p + 1;
        }
        unsigned long mask = n == BITS_PER_LONG ? ~0ul : ((1ul << n) - 1) << bit;
        if (mask == ~0ul) {
            __atomic_store_n(&bm[w], 0ul, __ATOMIC_RELAXED); /* whole word */
        } else {
            __atomic_fetch_and(&bm[w], ~mask, __ATOMIC_RELAXED);
        }
        p += n;
    }
}

uint64_t memory_region_take_dirty(MemoryRegion *mr, uint64_t addr, uint64_t npages, unsigned client,
                                  uint64_t *bitmap)
{
    _Static_assert(sizeof(unsigned long) == sizeof(uint64_t), "64-bit bitmap words");
    mr = ram_target(mr, &addr);
    uint64_t first, last;
    if (!npages || !mr || client >= DIRTY_MEMORY_NUM || !mr->dirty[client] ||
        !page_span(mr, addr, npages << MEMORY_PAGE_SHIFT, &first, &last)) {
        return 0;
    }
    unsigned long *bm = mr->dirty[client];
    uint64_t n = last - first + 1, added = 0;
    if (first % BITS_PER_LONG == 0) {
        for (uint64_t w = 0; w < (n + BITS_PER_LONG - 1) / BITS_PER_LONG; w++) {
            uint64_t left = n - w * BITS_PER_LONG;
            unsigned long mask = left >= BITS_PER_LONG ? ~0ul : (1ul << left) - 1;
            unsigned long *src = &bm[first / BITS_PER_LONG + w];
            unsigned long got = mask == ~0ul
                                    ? __atomic_exchange_n(src, 0ul, __ATOMIC_RELAXED)
                                    : __atomic_fetch_and(src, ~mask, __ATOMIC_RELAXED) & mask;
            if (got) {
                added += (uint64_t)__builtin_popcountl(got & ~bitmap[w]);
                bitmap[w] |= got;
            }
        }
        return added;
    }
    for (uint64_t i = 0; i < n; i++) { /* an unaligned start: page by page */
        uint64_t p = first + i;
        unsigned long bit = 1ul << (p % BITS_PER_LONG);
        if (__atomic_fetch_and(&bm[p / BITS_PER_LONG], ~bit, __ATOMIC_RELAXED) & bit) {
            uint64_t ob = 1ull << (i % 64);
            added += !(bitmap[i / 64] & ob);
            bitmap[i / 64] |= ob;
        }
    }
    return added;
}

static void sync_one(AddressSpace *as, const FlatRange *fr, void *opaque)
{
    MemoryRegionSection s = section_from_range(as, fr);
    for (MemoryListener *l = as->listeners; l; l = l->next) {
        if (l->log_sync) {
            l->log_sync(l, &s);
        }
    }
}

void memory_region_sync_dirty_bitmap(MemoryRegion *mr)
{
    uint64_t off = 0;
    mr = ram_target(mr, &off);
    if (mr && mr->nr_mappings) {
        memory_foreach_range_of(mr->ctx, mr, sync_one, NULL);
    }
}

void memory_region_dirty_free(MemoryRegion *mr)
{
    for (unsigned c = 0; c < DIRTY_MEMORY_NUM; c++) {
        free(mr->dirty[c]);
        mr->dirty[c] = NULL;
    }
}
