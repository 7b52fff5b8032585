/* SPDX-License-Identifier: MIT */
/*
 * Dispatch: guest accesses looked up in a FlatView and carried out on RAM by
 * memcpy or through a region's ops, honouring ops->valid (what the guest may
 * do), ops->impl (what the callbacks implement: accesses are split, widened
 * or aligned to fit) and the device's byte order.  The hot path does not
 * allocate.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "memory/memory-internal.h"

bool mem_region_ram_readable(const MemoryRegion *mr)
{
    return mr->ram || (mr->rom_device && mr->romd_mode);
}

static inline uint64_t ldn_le(const uint8_t *p, unsigned size)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < size; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

static inline void stn_le(uint8_t *p, unsigned size, uint64_t v)
{
    for (unsigned i = 0; i < size; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static inline bool big_endian(const MemoryRegion *mr)
{
    return mr->ops && mr->ops->endianness == DEVICE_BIG_ENDIAN;
}

/* A device value of `size` bytes as bytes in memory order. */
static inline void dev_to_bytes(const MemoryRegion *mr, uint8_t *b, unsigned size, uint64_t v)
{
    if (big_endian(mr)) {
        for (unsigned i = 0; i < size; i++) {
            b[i] = (uint8_t)(v >> (8 * (size - 1 - i)));
        }
    } else {
        stn_le(b, size, v);
    }
}

static inline uint64_t bytes_to_dev(const MemoryRegion *mr, const uint8_t *b, unsigned size)
{
    if (big_endian(mr)) {
        uint64_t v = 0;
        for (unsigned i = 0; i < size; i++) {
            v = (v << 8) | b[i];
        }
        return v;
    }
    return ldn_le(b, size);
}

static bool access_valid(const MemoryRegion *mr, uint64_t addr, unsigned size)
{
    const MemoryRegionOps *ops = mr->ops;
    if (size != 1 && size != 2 && size != 4 && size != 8) {
        return false;
    }
    if (!ops) {
        return true;
    }
    unsigned min = ops->valid.min_access_size ? ops->valid.min_access_size : 1;
    if (!ops->valid.unaligned && (addr & (size - 1))) {
        return false;
    }
    if (size < min || (ops->valid.max_access_size && size > ops->valid.max_access_size)) {
        return false;
    }
    return true;
}

static inline uint64_t mask_of(unsigned size)
{
    return size >= 8 ? ~0ull : (1ull << (8 * size)) - 1;
}

static inline uint64_t call_read(MemoryRegion *mr, uint64_t addr, unsigned size)
{
    if (!mr->ops->read) {
        return mask_of(size);
    }
    return mr->ops->read(mr->opaque, addr + mr->offset, size) & mask_of(size);
}

static inline void call_write(MemoryRegion *mr, uint64_t addr, uint64_t v, unsigned size)
{
    if (mr->ops->write) {
        mr->ops->write(mr->opaque, addr + mr->offset, v & mask_of(size), size);
    }
}

/* The unit size the callbacks are called with for a `size`-byte access. */
static unsigned impl_unit(const MemoryRegion *mr, unsigned size)
{
    unsigned min = mr->ops->impl.min_access_size ? mr->ops->impl.min_access_size : 1;
    unsigned max = mr->ops->impl.max_access_size ? mr->ops->impl.max_access_size : 4;
    unsigned u = size;
    if (u > max) {
        u = max;
    }
    if (u < min) {
        u = min;
    }
    return u;
}

/*
 * The next callback for the bytes [a, end) of an access: the largest unit
 * up to `u` that is naturally aligned (unless impl.unaligned) and stays
 * inside both the access and the region; only when impl.min forbids
 * anything smaller is the unit widened (*base moves down to its aligned
 * start, and the unit may cover bytes outside the access).
 */
static unsigned next_piece(const MemoryRegion *mr, Int128 a, Int128 end, unsigned u, Int128 *base)
{
    unsigned min = mr->ops->impl.min_access_size ? mr->ops->impl.min_access_size : 1;
    bool unaligned = mr->ops->impl.unaligned;
    while (u > min && ((!unaligned && (a & (u - 1))) || a + u > end || a + u > mr->size)) {
        u >>= 1;
    }
    *base = a;
    if (!unaligned && (a & (u - 1))) {
        *base = a & ~(Int128)(u - 1);
    }
    return u;
}

/* Bytes b[0..size) at addr, through the callbacks in impl-sized units. */
static void io_read_bytes(MemoryRegion *mr, uint64_t addr, uint8_t *b, unsigned size)
{
    unsigned u = impl_unit(mr, size);
    bool aligned_ok = mr->ops->impl.unaligned || !(addr & (u - 1));
    if (u == size && aligned_ok) {
        dev_to_bytes(mr, b, size, call_read(mr, addr, size));
        return;
    }
    /* 128-bit arithmetic: the access may end exactly at 2^64 */
    Int128 end = (Int128)addr + size;
    for (Int128 a = addr; a < end;) {
        Int128 base;
        unsigned n = next_piece(mr, a, end, u, &base);
        uint8_t tmp[8];
        dev_to_bytes(mr, tmp, n, call_read(mr, (uint64_t)base, n));
        for (unsigned j = 0; j < n; j++) {
            if (base + j >= addr && base + j < end) {
                b[(size_t)(base + j - addr)] = tmp[j];
            }
        }
        a = base + n;
    }
}

static void io_write_bytes(MemoryRegion *mr, uint64_t addr, const uint8_t *b, unsigned size)
{
    unsigned u = impl_unit(mr, size);
    bool aligned_ok = mr->ops->impl.unaligned || !(addr & (u - 1));
    if (u == size && aligned_ok) {
        call_write(mr, addr, bytes_to_dev(mr, b, size), size);
        return;
    }
    Int128 end = (Int128)addr + size;
    for (Int128 a = addr; a < end;) {
        Int128 base;
        unsigned n = next_piece(mr, a, end, u, &base);
        uint8_t tmp[8];
        if (base < addr || base + n > end) {
            /* widened to impl.min: merge with what the device holds */
            dev_to_bytes(mr, tmp, n, call_read(mr, (uint64_t)base, n));
        }
        for (unsigned j = 0; j < n; j++) {
            if (base + j >= addr && base + j < end) {
                tmp[j] = b[(size_t)(base + j - addr)];
            }
        }
        call_write(mr, (uint64_t)base, bytes_to_dev(mr, tmp, n), n);
        a = base + n;
    }
}

static bool eventfd_hit(MemoryRegion *mr, uint64_t addr, uint64_t data, unsigned size)
{
    for (unsigned i = 0; i < mr->nr_ioeventfds; i++) {
        const MemoryRegionIoeventfd *e = &mr->ioeventfds[i];
        if (e->addr == addr && (e->size == 0 || e->size == size) &&
            (!e->match_data || e->data == data)) {
            uint64_t one = 1;
            ssize_t r = write(e->fd, &one, sizeof(one));
            (void)r;
            return true;
        }
    }
    return false;
}

MemTxResult memory_region_dispatch_read(MemoryRegion *mr, uint64_t addr, uint64_t *data,
                                        unsigned size)
{
    uint8_t b[8];
    if (!access_valid(mr, addr, size) || (Int128)addr + size > mr->size) {
        *data = mask_of(size & 15);
        return MEMTX_ERROR;
    }
    if (mem_region_ram_readable(mr)) {
        memcpy(b, (uint8_t *)mr->ram_block + addr, size);
    } else if (!mr->ops) {
        *data = mask_of(size);
        return MEMTX_DECODE_ERROR;
    } else {
        io_read_bytes(mr, addr, b, size);
    }
    *data = ldn_le(b, size);
    return MEMTX_OK;
}

MemTxResult memory_region_dispatch_write(MemoryRegion *mr, uint64_t addr, uint64_t data,
                                         unsigned size)
{
    uint8_t b[8];
    if (!access_valid(mr, addr, size) || (Int128)addr + size > mr->size) {
        return MEMTX_ERROR;
    }
    data &= mask_of(size);
    if (mr->ram) {
        if (!mr->readonly) {
            stn_le((uint8_t *)mr->ram_block + addr, size, data);
            if (mr->dirty_log_mask) {
                memory_region_set_dirty(mr, addr, size);
            }
        }
        return MEMTX_OK;
    }
    if (mr->nr_ioeventfds && eventfd_hit(mr, addr, data, size)) {
        return MEMTX_OK;
    }
    if (!mr->ops) {
        return MEMTX_DECODE_ERROR;
    }
    stn_le(b, size, data);
    io_write_bytes(mr, addr, b, size);
    return MEMTX_OK;
}

/* Largest access the region accepts at addr for up to l bytes (0 if none). */
static unsigned access_size_for(const MemoryRegion *mr, uint64_t addr, uint64_t l)
{
    unsigned max = 8;
    if (mr->ops && mr->ops->valid.max_access_size) {
        max = mr->ops->valid.max_access_size;
    }
    unsigned s = 8;
    while (s > 1 &&
           (s > max || s > l || (!(mr->ops && mr->ops->valid.unaligned) && (addr & (s - 1))))) {
        s >>= 1;
    }
    return s;
}

static MemTxResult rw(FlatView *fv, AddressSpace *as, uint64_t addr, uint8_t *buf, uint64_t len,
                      bool is_write)
{
    MemTxResult res = MEMTX_OK;
    while (len) {
        const FlatRange *fr = fv ? flatview_lookup(fv, addr) : NULL;
        uint64_t l;
        if (!fr) {
            /* unassigned up to the next range (or the end of the access) */
            size_t i = 0;
            uint64_t gap = len;
            if (fv) {
                size_t lo = 0, hi = fv->nr;
                while (lo < hi) {
                    size_t mid = lo + (hi - lo) / 2;
                    if (fv->ranges[mid].start <= addr) {
                        lo = mid + 1;
                    } else {
                        hi = mid;
                    }
                }
                i = lo;
                if (i < fv->nr && fv->ranges[i].start - addr < gap) {
                    gap = fv->ranges[i].start - addr;
                }
            }
            if (!is_write) {
                memset(buf, 0xff, gap);
            }
            if (as) {
                __atomic_fetch_add(&as->unassigned, 1, __ATOMIC_RELAXED);
            }
            res |= MEMTX_DECODE_ERROR;
            l = gap;
        } else {
            MemoryRegion *mr = fr->mr;
            uint64_t off = fr->offset_in_region + (addr - fr->start);
            Int128 avail = (Int128)fr->start + fr->size - addr;
            l = avail < len ? (uint64_t)avail : len;
            if (is_write ? mr->ram : mem_region_ram_readable(mr)) {
                if (!is_write) {
                    memcpy(buf, (uint8_t *)mr->ram_block + off, l);
                } else if (!fr->readonly && !mr->readonly) {
                    memcpy((uint8_t *)mr->ram_block + off, buf, l);
                    if (mr->dirty_log_mask) {
                        memory_region_set_dirty(mr, off, l);
                    }
                }
            } else {
                unsigned s;
                if (l == len && (len == 1 || len == 2 || len == 4 || len == 8)) {
                    s = (unsigned)len; /* one guest access */
                } else {
                    s = access_size_for(mr, off, l);
                }
                l = s;
                if (is_write) {
                    res |= memory_region_dispatch_write(mr, off, ldn_le(buf, s), s);
                } else {
                    uint64_t v;
                    res |= memory_region_dispatch_read(mr, off, &v, s);
                    stn_le(buf, s, v);
                }
            }
        }
        addr += l;
        buf += l;
        len -= l;
    }
    return res;
}

MemTxResult flatview_read(FlatView *fv, AddressSpace *as, uint64_t addr, void *buf, uint64_t len)
{
    return rw(fv, as, addr, buf, len, false);
}

MemTxResult flatview_write(FlatView *fv, AddressSpace *as, uint64_t addr, const void *buf,
                           uint64_t len)
{
    return rw(fv, as, addr, (uint8_t *)buf, len, true);
}

MemTxResult address_space_read(AddressSpace *as, uint64_t addr, void *buf, uint64_t len)
{
    FlatView *fv = address_space_get_flatview(as);
    MemTxResult r = rw(fv, as, addr, buf, len, false);
    flatview_unref(fv);
    return r;
}

MemTxResult address_space_write(AddressSpace *as, uint64_t addr, const void *buf, uint64_t len)
{
    FlatView *fv = address_space_get_flatview(as);
    MemTxResult r = rw(fv, as, addr, (uint8_t *)buf, len, true);
    flatview_unref(fv);
    return r;
}
