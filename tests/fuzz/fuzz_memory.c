/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for memory/: the input is a program of API calls (create
 * regions of every kind, build and mutate the tree inside nested
 * transactions, aliases, priorities, coalescing, ioeventfds, dirty logging,
 * guest accesses, info mtree, address spaces and listeners).  API errors are
 * fine; crashes, leaks, undefined behaviour, a FlatView that differs from a
 * full re-render (memory_context_check_flatviews) and a listener whose view
 * differs from the FlatView are bugs and abort.
 *
 * Memory stays bounded: at most NSLOT regions, RAM regions of at most 64 KiB,
 * accesses of at most 256 bytes.
 *
 * The harness never destroys a region that is the root of a live address
 * space (the header does not say whether that is refused).
 */
#include "tests/fuzz/fuzz_memory.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define NSLOT 24
#define NAS 2
#define MAX_RAM 0x10000u
#define MAX_LEN 256u
#define MAX_OPS 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { K_CONTAINER, K_IO, K_RAM, K_RAM_PTR, K_ROM, K_ROMDEV, K_ALIAS, K_NKINDS };

typedef struct Slot {
    MemoryRegion *mr; /* NULL: empty slot */
    void *ptrbuf;     /* caller memory of K_RAM_PTR */
    int kind;
    uint64_t legacy;
} Slot;

typedef struct Fz {
    const uint8_t *p;
    size_t n;
    MemoryContext *ctx;
    Slot s[NSLOT];
    AddressSpace *as[NAS];
    int as_root[NAS]; /* slot index of each AS's root */
    Listener lis[NAS];
    int depth;
} Fz;

static int g_efd = -1, g_pipe[2] = { -1, -1 };
static bool g_trace; /* FUZZ_TRACE=1: print each operation */
bool g_skip_known;

#define TRACE(...) \
    do { \
        if (g_trace) \
            fprintf(stderr, __VA_ARGS__); \
    } while (0)

/* ---- input decoding --------------------------------------------------- */

static uint8_t u8(Fz *f)
{
    if (!f->n)
        return 0;
    f->n--;
    return *f->p++;
}

static uint16_t u16(Fz *f)
{
    return (uint16_t)(u8(f) | (unsigned)u8(f) << 8);
}

static uint32_t u32(Fz *f)
{
    return (uint32_t)u16(f) | (uint32_t)u16(f) << 16;
}

static uint64_t u64(Fz *f)
{
    return (uint64_t)u32(f) | (uint64_t)u32(f) << 32;
}

/* A size: small, 32-bit, 2^64 (UINT64_MAX), a power of two, or anything. */
static uint64_t size_val(Fz *f)
{
    switch (u8(f) % 6) {
    case 0:
        return u8(f);
    case 1:
        return (uint64_t)u16(f) + 1;
    case 2:
        return u32(f);
    case 3:
        return UINT64_MAX;
    case 4:
        return 1ull << (u8(f) % 64);
    default:
        return u64(f);
    }
}

/* An address/offset: small, 32-bit, near the top of 2^64, or anything. */
static uint64_t addr_val(Fz *f)
{
    switch (u8(f) % 6) {
    case 0:
        return u16(f);
    case 1:
        return u32(f);
    case 2:
        return UINT64_MAX - u16(f);
    case 3:
        return (1ull << (u8(f) % 64)) - (u8(f) % 3);
    case 4:
        return (uint64_t)u8(f) << 12;
    default:
        return u64(f);
    }
}

static Slot *slot(Fz *f)
{
    return &f->s[u8(f) % NSLOT];
}

static MemoryRegion *live_mr(Fz *f)
{
    Slot *s = slot(f);
    return s->mr;
}

/* ---- device callbacks ------------------------------------------------- */

static uint64_t dev_read(void *opaque, uint64_t addr, unsigned size)
{
    (void)opaque;
    if (size == 0 || size > 8)
        abort();
    return addr * 0x0101010101010101ull ^ size;
}

static void dev_write(void *opaque, uint64_t addr, uint64_t data, unsigned size)
{
    (void)opaque;
    (void)addr;
    (void)data;
    if (size == 0 || size > 8)
        abort();
}

static const MemoryRegionOps fuzz_ops[4] = {
    { .read = dev_read, .write = dev_write },
    { .read = dev_read,
      .write = dev_write,
      .endianness = DEVICE_BIG_ENDIAN,
      .valid = { .min_access_size = 2, .max_access_size = 4 },
      .impl = { .min_access_size = 4, .max_access_size = 4 } },
    { .read = dev_read,
      .write = dev_write,
      .endianness = DEVICE_LITTLE_ENDIAN,
      .valid = { .min_access_size = 1, .max_access_size = 8, .unaligned = true },
      .impl = { .min_access_size = 1, .max_access_size = 8, .unaligned = true } },
    { .read = NULL,
      .write = dev_write,
      .valid = { .unaligned = true },
      .impl = { .min_access_size = 2 } },
};

/* ---- the interpreter -------------------------------------------------- */

static bool is_as_root(Fz *f, const MemoryRegion *mr)
{
    for (int i = 0; i < NAS; i++)
        if (f->as[i] && address_space_root(f->as[i]) == mr)
            return true;
    return false;
}

static void op_create(Fz *f)
{
    Slot *s = slot(f);
    if (s->mr)
        return;
    char name[16];
    snprintf(name, sizeof(name), "r%d", (int)(s - f->s));
    s->mr = calloc(1, sizeof(*s->mr));
    if (!s->mr)
        abort();
    s->kind = u8(f) % K_NKINDS;
    const MemoryRegionOps *ops = &fuzz_ops[u8(f) % 4];
    const char *owner = u8(f) & 1 ? "dev" : NULL;
    uint64_t sz;
    int r;
    switch (s->kind) {
    case K_CONTAINER:
        r = memory_region_init(s->mr, f->ctx, name, size_val(f));
        break;
    case K_IO:
        r = memory_region_init_io(s->mr, f->ctx, u8(f) & 7 ? ops : NULL, s, name, size_val(f));
        break;
    case K_RAM:
        r = memory_region_init_ram(s->mr, f->ctx, owner, name, u16(f) % (MAX_RAM + 1));
        break;
    case K_RAM_PTR:
        sz = u16(f) % (MAX_RAM + 1);
        s->ptrbuf = calloc(1, sz ? sz : 1);
        r = memory_region_init_ram_ptr(s->mr, f->ctx, owner, name, sz, s->ptrbuf);
        break;
    case K_ROM:
        r = memory_region_init_rom(s->mr, f->ctx, owner, name, u16(f) % (MAX_RAM + 1));
        break;
    case K_ROMDEV:
        r = memory_region_init_rom_device(s->mr, f->ctx, ops, s, owner, name,
                                          u16(f) % (MAX_RAM + 1));
        break;
    default: {
        MemoryRegion *t = live_mr(f);
        uint64_t off = addr_val(f);
        r = t ? memory_region_init_alias(s->mr, f->ctx, name, t, off, size_val(f)) : -1;
        break;
    }
    }
    TRACE("create %s kind %d -> %d%s%s\n", name, s->kind, r, r ? ": " : "",
          r ? memory_context_last_error(f->ctx) : "");
    if (r != 0) {
        free(s->mr);
        free(s->ptrbuf);
        memset(s, 0, sizeof(*s));
        return;
    }
    TRACE("  size 0x%" PRIx64 "\n", memory_region_size(s->mr));
    /* exercise the read-back accessors */
    (void)memory_region_size(s->mr);
    (void)memory_region_size128(s->mr);
    (void)memory_region_name(s->mr);
    (void)memory_region_is_ram(s->mr);
    (void)memory_region_is_romd(s->mr);
    uint8_t *p = memory_region_get_ram_ptr(s->mr);
    if (p && memory_region_is_ram(s->mr) && memory_region_size(s->mr))
        p[memory_region_size(s->mr) - 1] = 0x5a;
}

static void free_slot(Slot *s)
{
    free(s->mr);
    free(s->ptrbuf);
    memset(s, 0, sizeof(*s));
}

static void op_destroy(Fz *f)
{
    Slot *s = slot(f);
    if (!s->mr || is_as_root(f, s->mr))
        return;
    if (g_skip_known && f->depth)
        return; /* known: a FlatView's shared root can be destroyed mid-transaction */
    TRACE("destroy %s", memory_region_name(s->mr));
    int r = memory_region_destroy(s->mr);
    TRACE(" -> %d\n", r);
    if (r == 0)
        free_slot(s);
}

static void op_access(Fz *f, bool write)
{
    int a = u8(f) % NAS;
    if (!f->as[a])
        return;
    uint64_t addr = addr_val(f);
    uint64_t len = u8(f) & 1 ? 1u << (u8(f) % 4) : u16(f) % (MAX_LEN + 1);
    uint8_t buf[MAX_LEN];
    if (len && addr + len - 1 < addr)
        len = 0 - addr; /* stay below 2^64 */
    if (write) {
        for (uint64_t i = 0; i < len; i++)
            buf[i] = u8(f);
        (void)address_space_write(f->as[a], addr, buf, len);
    } else {
        (void)address_space_read(f->as[a], addr, buf, len);
    }
    TRACE("%s as%d 0x%" PRIx64 " len %" PRIu64 "\n", write ? "write" : "read", a, addr, len);
}

static void op_dirty(Fz *f)
{
    MemoryRegion *mr = live_mr(f);
    if (!mr)
        return;
    unsigned client = u8(f) % 4; /* 2 is not a client (but < DIRTY_MEMORY_NUM) */
    uint64_t addr = addr_val(f), sz = size_val(f);
    switch (u8(f) % 7) {
    case 0:
        (void)memory_region_set_log(mr, u8(f) & 1, client);
        break;
    case 1:
        (void)memory_region_get_dirty(mr, addr, sz, client);
        break;
    case 2:
        memory_region_set_dirty(mr, addr, sz);
        break;
    case 3:
        memory_region_reset_dirty(mr, addr, sz, client);
        break;
    case 4:
        memory_region_sync_dirty_bitmap(mr);
        break;
    case 5:
        (void)memory_region_get_dirty_log_mask(mr);
        break;
    default: {
        uint64_t bm[2] = { u64(f), u64(f) };
        memory_region_set_dirty_bitmap(mr, addr, bm, u8(f) % 129);
        break;
    }
    }
}

static void op_flatview(Fz *f)
{
    int a = u8(f) % NAS;
    if (!f->as[a])
        return;
    FlatView *fv = fuzz_get_flatview(f->as[a]);
    if (!fv)
        return;
    size_t n = flatview_nr_ranges(fv);
    for (size_t i = 0; i < n; i++) {
        const FlatRange *fr = flatview_range(fv, i);
        const FlatRange *l = flatview_lookup(fv, fr->start);
        if (!l || l->start != fr->start)
            abort();
    }
    (void)flatview_lookup(fv, addr_val(f));
    (void)flatview_root(fv);
    uint8_t buf[16];
    (void)flatview_read(fv, f->as[a], addr_val(f) & ~15ull, buf, u8(f) % 17);
    flatview_unref(fv);
}

static void op_as(Fz *f)
{
    int a = u8(f) % NAS;
    if (f->as[a]) {
        if (u8(f) & 1)
            return;
        if (g_skip_known && f->depth)
            return; /* known: drops pending updates of ASes sharing the root */
        address_space_destroy(f->as[a]);
        TRACE("address_space_destroy as%d\n", a);
        f->as[a] = NULL;
        for (int i = 0; i < NAS; i++) {
            Listener *L = &f->lis[i];
            if (L->registered && L->as_index == a) {
                if (L->nlive) /* destroy sends region_del for everything */
                    abort();
                L->registered = false;
            }
        }
        return;
    }
    MemoryRegion *root = live_mr(f);
    if (root) {
        f->as[a] = address_space_new(f->ctx, root, a ? "as1" : "as0");
        TRACE("address_space_new as%d on %s -> %p\n", a, memory_region_name(root),
              (void *)f->as[a]);
    }
}

static void op_listener(Fz *f)
{
    int i = u8(f) % NAS;
    Listener *L = &f->lis[i];
    if (L->registered) {
        memory_listener_unregister(&L->l);
        TRACE("listener %d unregistered\n", i);
        listener_init(L);
        return;
    }
    int a = u8(f) % NAS;
    if (!f->as[a])
        return;
    listener_init(L);
    L->as_index = a;
    L->registered = true;
    memory_listener_register(&L->l, f->as[a]);
    TRACE("listener %d registered on as%d\n", i, a);
}

static void check_all(Fz *f)
{
    if (memory_context_check_flatviews(f->ctx) != 0) {
        fprintf(stderr, "check_flatviews: %s\n", memory_context_last_error(f->ctx));
        if (g_trace) {
            char *t = mtree_info_str(f->ctx, MTREE_DISABLED);
            fprintf(stderr, "%s", t ? t : "");
            free(t);
            t = mtree_info_str(f->ctx, MTREE_FLATVIEW);
            fprintf(stderr, "%s", t ? t : "");
            free(t);
        }
        abort();
    }
    for (int i = 0; i < NAS; i++)
        check_listener(&f->lis[i], f->as[f->lis[i].as_index]);
}

static const char *nmr(const MemoryRegion *mr)
{
    return mr ? memory_region_name(mr) : "-";
}

static void step(Fz *f)
{
    MemoryRegion *a, *b;
    uint64_t x, y;
    int r;
    unsigned op = u8(f) % 26;
    switch (op) {
    case 0:
    case 1:
        op_create(f);
        break;
    case 2:
        op_destroy(f);
        break;
    case 3:
    case 4:
        a = live_mr(f), b = live_mr(f), x = addr_val(f);
        if (a && b) {
            r = memory_region_add_subregion(a, x, b);
            TRACE("add %s into %s at 0x%" PRIx64 " -> %d\n", nmr(b), nmr(a), x, r);
        }
        break;
    case 5:
    case 6: {
        a = live_mr(f), b = live_mr(f), x = addr_val(f);
        int prio = (int8_t)u8(f);
        if (a && b) {
            r = memory_region_add_subregion_overlap(a, x, b, prio);
            TRACE("add_overlap %s into %s at 0x%" PRIx64 " prio %d -> %d\n", nmr(b), nmr(a), x,
                  prio, r);
        }
        break;
    }
    case 7:
        b = live_mr(f);
        a = b && (u8(f) & 3) ? memory_region_get_container(b) : live_mr(f);
        if (a && b) {
            r = memory_region_del_subregion(a, b);
            TRACE("del %s from %s -> %d\n", nmr(b), nmr(a), r);
        }
        break;
    case 8:
        if ((a = live_mr(f))) {
            bool v = u8(f) & 1;
            memory_region_set_enabled(a, v);
            TRACE("set_enabled %s %d\n", nmr(a), v);
        }
        break;
    case 9:
        if ((a = live_mr(f))) {
            x = addr_val(f);
            r = memory_region_set_address(a, x);
            TRACE("set_address %s 0x%" PRIx64 " -> %d\n", nmr(a), x, r);
        }
        break;
    case 10:
        if ((a = live_mr(f))) {
            x = addr_val(f);
            r = memory_region_set_alias_offset(a, x);
            TRACE("set_alias_offset %s 0x%" PRIx64 " -> %d\n", nmr(a), x, r);
        }
        break;
    case 11:
        if ((a = live_mr(f))) {
            bool v = u8(f) & 1;
            memory_region_set_readonly(a, v);
            TRACE("set_readonly %s %d\n", nmr(a), v);
        }
        break;
    case 12:
        if ((a = live_mr(f))) {
            bool v = u8(f) & 1;
            memory_region_rom_device_set_readable(a, v);
            TRACE("rom_device_set_readable %s %d\n", nmr(a), v);
        }
        break;
    case 13:
        if ((a = live_mr(f))) {
            x = addr_val(f);
            memory_region_set_offset(a, x);
            TRACE("set_offset %s 0x%" PRIx64 "\n", nmr(a), x);
        }
        break;
    case 14:
        if (!(a = live_mr(f)))
            break;
        x = u8(f) % 3;
        if (x == 0) {
            r = memory_region_set_coalescing(a);
            TRACE("set_coalescing %s -> %d\n", nmr(a), r);
        } else if (x == 1) {
            uint64_t off = addr_val(f), sz = size_val(f);
            r = memory_region_add_coalescing(a, off, sz);
            TRACE("add_coalescing %s 0x%" PRIx64 "+0x%" PRIx64 " -> %d\n", nmr(a), off, sz, r);
        } else {
            memory_region_clear_coalescing(a);
            TRACE("clear_coalescing %s\n", nmr(a));
        }
        break;
    case 15: {
        if (!(a = live_mr(f)))
            break;
        bool add = u8(f) & 1, match = u8(f) & 1;
        int fd = u8(f) & 1 ? g_efd : g_pipe[1];
        x = addr_val(f);
        unsigned sz = u8(f) % 9;
        y = u64(f);
        if (add)
            r = memory_region_add_eventfd(a, x, sz, match, y, fd);
        else
            r = memory_region_del_eventfd(a, x, sz, match, y, fd);
        TRACE("%s_eventfd %s 0x%" PRIx64 " size %u match %d data 0x%" PRIx64 " -> %d\n",
              add ? "add" : "del", nmr(a), x, sz, match, y, r);
        break;
    }
    case 16:
        if (f->depth < 16) {
            memory_region_transaction_begin(f->ctx);
            f->depth++;
            TRACE("begin (depth %d)\n", f->depth);
        }
        break;
    case 17:
        if (f->depth > 0) {
            memory_region_transaction_commit(f->ctx);
            TRACE("commit (depth %d)\n", f->depth);
            f->depth--;
        }
        break;
    case 18:
        op_dirty(f);
        break;
    case 19:
        op_access(f, false);
        break;
    case 20:
        op_access(f, true);
        break;
    case 21: {
        Slot *t = slot(f); /* one access to a terminal region */
        if ((a = t->mr) && t->kind != K_CONTAINER && t->kind != K_ALIAS) {
            uint64_t v = 0;
            unsigned sz = u8(f) % 10;
            x = addr_val(f);
            if (u8(f) & 1) {
                r = memory_region_dispatch_read(a, x, &v, sz);
                TRACE("dispatch_read %s 0x%" PRIx64 " size %u -> %d\n", nmr(a), x, sz, r);
            } else {
                r = memory_region_dispatch_write(a, x, u64(f), sz);
                TRACE("dispatch_write %s 0x%" PRIx64 " size %u -> %d\n", nmr(a), x, sz, r);
            }
        }
        break;
    }
    case 22: {
        char *s = u8(f) & 1 ? mtree_info_str(f->ctx, u8(f) % 4) : mtree_info_json(f->ctx);
        if (!s)
            abort();
        free(s);
        break;
    }
    case 23:
        op_as(f);
        break;
    case 24:
        op_listener(f);
        break;
    default:
        op_flatview(f);
        break;
    }
}

static void teardown(Fz *f)
{
    while (f->depth > 0) {
        memory_region_transaction_commit(f->ctx);
        f->depth--;
    }
    check_all(f);
    for (int i = 0; i < NAS; i++)
        if (f->lis[i].registered)
            memory_listener_unregister(&f->lis[i].l);
    for (int i = 0; i < NAS; i++)
        if (f->as[i])
            address_space_destroy(f->as[i]);
    for (int i = 0; i < NSLOT; i++) {
        MemoryRegion *mr = f->s[i].mr, *c = mr ? memory_region_get_container(mr) : NULL;
        if (c && memory_region_del_subregion(c, mr) != 0)
            abort();
    }
    /* Aliases first: keep destroying until nothing is left. */
    for (bool progress = true; progress;) {
        progress = false;
        for (int i = 0; i < NSLOT; i++)
            if (f->s[i].mr && memory_region_destroy(f->s[i].mr) == 0) {
                free_slot(&f->s[i]);
                progress = true;
            }
    }
    for (int i = 0; i < NSLOT; i++) {
        if (f->s[i].mr) {
            fprintf(stderr, "region r%d cannot be destroyed after teardown: %s\n", i,
                    memory_context_last_error(f->ctx));
            abort();
        }
    }
    memory_context_free(f->ctx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (g_efd < 0) {
        g_trace = getenv("FUZZ_TRACE") != NULL;
        g_skip_known = getenv("FUZZ_SKIP_KNOWN") != NULL;
        g_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (pipe2(g_pipe, O_NONBLOCK | O_CLOEXEC) != 0 || g_efd < 0)
            abort();
    }
    static Fz fz;
    Fz *f = &fz;
    memset(f, 0, sizeof(*f));
    f->p = data;
    f->n = size;
    f->ctx = memory_context_new();
    if (!f->ctx)
        abort();
    for (int i = 0; i < NAS; i++)
        listener_init(&f->lis[i]);
    for (unsigned ops = 0; f->n && ops < MAX_OPS; ops++) {
        step(f);
        if (f->depth == 0)
            check_all(f);
    }
    teardown(f);
    /* drain the eventfd and pipe so they never fill up */
    uint8_t sink[512];
    uint64_t cnt;
    if (read(g_efd, &cnt, sizeof(cnt)) < 0 && 0)
        abort();
    while (read(g_pipe[0], sink, sizeof(sink)) > 0)
        ;
    return 0;
}
