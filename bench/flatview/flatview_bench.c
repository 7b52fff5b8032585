/* SPDX-License-Identifier: MIT */
/*
 * FlatView benchmark: full render vs incremental commit, and dispatch speed.
 *
 * For 1k, 10k and 100k regions it builds a board-like tree (a 2^64 root with
 * a low-priority catch-all I/O region, bridges of buses of 4 KiB I/O and RAM
 * leaves, some higher-priority overlays), then prints:
 *   - full render: address_space_new on the built tree (and a from-scratch
 *     re-render + compare via memory_context_check_flatviews);
 *   - toggle: set_enabled(false) or (true) on one random leaf, each an
 *     implicit commit, averaged;
 *   - flatview_lookup on random mapped addresses per second;
 *   - address_space_read of 4 bytes to I/O leaves per second.
 *
 *   flatview [--sizes 1000,10000,100000] [--toggles N]
 */
#include "memory/memory.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BUS_SIZE 0x100000ull /* 1 MiB, 256 leaf slots of 4 KiB */
#define LEAVES_PER_BUS 48
#define BUSES_PER_BRIDGE 16
#define BRIDGE_BASE 0x100000000ull /* 4 GiB */
#define REPEAT 5

typedef struct Board {
    MemoryContext *ctx;
    MemoryRegion *mr; /* all regions, [0] is the root */
    size_t n, cap;
    size_t *leaves; /* indexes of leaf regions */
    size_t nleaves;
    uint64_t *leaf_addr; /* absolute address of each leaf */
    bool *leaf_io;
    uint8_t *ram; /* backing of the RAM leaves */
    AddressSpace *as;
} Board;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng_state = 0x243F6A8885A308D3ull;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t dev_read(void *opaque, uint64_t addr, unsigned size)
{
    (void)opaque;
    return addr ^ size;
}

static void dev_write(void *opaque, uint64_t addr, uint64_t data, unsigned size)
{
    (void)opaque;
    (void)addr;
    (void)data;
    (void)size;
}

static const MemoryRegionOps dev_ops = {
    .read = dev_read,
    .write = dev_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = { .min_access_size = 1, .max_access_size = 8 },
    .impl = { .min_access_size = 1, .max_access_size = 8 },
};

static void check(int r, const Board *b, const char *what)
{
    if (r != 0) {
        fprintf(stderr, "flatview bench: %s: %s\n", what, memory_context_last_error(b->ctx));
        exit(1);
    }
}

static MemoryRegion *next(Board *b, size_t *idx)
{
    if (b->n == b->cap) {
        fprintf(stderr, "flatview bench: region budget exceeded\n");
        exit(1);
    }
    *idx = b->n;
    return &b->mr[b->n++];
}

/* Builds about `want` regions. */
static void build(Board *b, size_t want)
{
    char name[48];
    size_t idx;
    b->cap = want + 64;
    b->mr = calloc(b->cap, sizeof(*b->mr));
    b->leaves = calloc(b->cap, sizeof(*b->leaves));
    b->leaf_addr = calloc(b->cap, sizeof(*b->leaf_addr));
    b->leaf_io = calloc(b->cap, sizeof(*b->leaf_io));
    b->ram = calloc(want / 8 + 1, 4096);
    if (!b->mr || !b->leaves || !b->leaf_addr || !b->leaf_io || !b->ram) {
        fprintf(stderr, "flatview bench: out of memory\n");
        exit(1);
    }
    b->ctx = memory_context_new();
    MemoryRegion *root = next(b, &idx);
    check(memory_region_init(root, b->ctx, "system", UINT64_MAX), b, "root");
    MemoryRegion *bg = next(b, &idx);
    check(memory_region_init_io(bg, b->ctx, &dev_ops, NULL, "catch-all", UINT64_MAX), b, "bg");
    check(memory_region_add_subregion_overlap(root, 0, bg, -1), b, "add bg");

    size_t nram = 0;
    for (size_t br = 0; b->n < want; br++) {
        MemoryRegion *bridge = next(b, &idx);
        uint64_t bridge_addr = BRIDGE_BASE + br * BUSES_PER_BRIDGE * BUS_SIZE;
        snprintf(name, sizeof(name), "bridge%zu", br);
        check(memory_region_init(bridge, b->ctx, name, BUSES_PER_BRIDGE * BUS_SIZE), b, name);
        check(memory_region_add_subregion(root, bridge_addr, bridge), b, "add bridge");
        for (size_t bu = 0; bu < BUSES_PER_BRIDGE && b->n < want; bu++) {
            MemoryRegion *bus = next(b, &idx);
            uint64_t bus_addr = bu * BUS_SIZE;
            snprintf(name, sizeof(name), "bus%zu.%zu", br, bu);
            check(memory_region_init(bus, b->ctx, name, BUS_SIZE), b, name);
            check(memory_region_add_subregion(bridge, bus_addr, bus), b, "add bus");
            for (size_t l = 0; l < LEAVES_PER_BUS && b->n < want; l++) {
                MemoryRegion *leaf = next(b, &idx);
                uint64_t off = l * 0x4000; /* 4 KiB leaves, 12 KiB apart */
                bool is_ram = l % 8 == 7;
                snprintf(name, sizeof(name), "%s%zu.%zu.%zu", is_ram ? "ram" : "dev", br, bu, l);
                if (is_ram)
                    check(memory_region_init_ram_ptr(leaf, b->ctx, "bench", name, 0x1000,
                                                     b->ram + 4096 * nram++),
                          b, name);
                else
                    check(memory_region_init_io(leaf, b->ctx, &dev_ops, NULL, name, 0x1000), b,
                          name);
                check(memory_region_add_subregion(bus, off, leaf), b, "add leaf");
                b->leaves[b->nleaves] = idx;
                b->leaf_addr[b->nleaves] = bridge_addr + bus_addr + off;
                b->leaf_io[b->nleaves] = !is_ram;
                b->nleaves++;
            }
            /* every 4th bus: an overlay of higher priority across two leaves */
            if (bu % 4 == 0 && b->n < want) {
                MemoryRegion *ov = next(b, &idx);
                snprintf(name, sizeof(name), "overlay%zu.%zu", br, bu);
                check(memory_region_init_io(ov, b->ctx, &dev_ops, NULL, name, 0x6000), b, name);
                check(memory_region_add_subregion_overlap(bus, 0x2000, ov, 1), b, "add overlay");
            }
        }
    }
}

static void teardown(Board *b)
{
    address_space_destroy(b->as);
    /* leaves first (reverse creation order), then their containers */
    for (size_t i = b->n; i-- > 1;) {
        MemoryRegion *c = memory_region_get_container(&b->mr[i]);
        if (c)
            memory_region_del_subregion(c, &b->mr[i]);
    }
    for (size_t i = b->n; i-- > 0;)
        memory_region_destroy(&b->mr[i]);
    memory_context_free(b->ctx);
    free(b->mr);
    free(b->leaves);
    free(b->leaf_addr);
    free(b->leaf_io);
    free(b->ram);
}

static void run(size_t want, unsigned toggles)
{
    Board b = { 0 };
    double t0 = now();
    build(&b, want);
    double t_build = now() - t0;

    /* The machine may be shared: every figure is the best of REPEAT runs. */
    double t_full = 1e9;
    for (int rep = 0; rep < REPEAT; rep++) {
        if (b.as)
            address_space_destroy(b.as);
        t0 = now();
        b.as = address_space_new(b.ctx, &b.mr[0], "memory");
        double t = now() - t0;
        t_full = t < t_full ? t : t_full;
        if (!b.as) {
            fprintf(stderr, "flatview bench: address_space_new: %s\n",
                    memory_context_last_error(b.ctx));
            exit(1);
        }
    }
    FlatView *fv = address_space_get_flatview(b.as);
    size_t nranges = flatview_nr_ranges(fv);
    flatview_unref(fv);

    double t_check = 1e9;
    int chk = 0;
    for (int rep = 0; rep < REPEAT && chk == 0; rep++) {
        t0 = now();
        chk = memory_context_check_flatviews(b.ctx);
        double t = now() - t0;
        t_check = t < t_check ? t : t_check;
    }
    if (chk != 0) {
        fprintf(stderr, "flatview bench: check_flatviews: %s\n", memory_context_last_error(b.ctx));
        exit(1);
    }

    /* toggle one random leaf off and on: each call is one commit */
    double t_toggle = 1e9;
    for (int rep = 0; rep < REPEAT; rep++) {
        t0 = now();
        for (unsigned i = 0; i < toggles / REPEAT + 1; i++) {
            MemoryRegion *leaf = &b.mr[b.leaves[rnd() % b.nleaves]];
            memory_region_set_enabled(leaf, false);
            memory_region_set_enabled(leaf, true);
        }
        double t = (now() - t0) / (2.0 * (toggles / REPEAT + 1));
        t_toggle = t < t_toggle ? t : t_toggle;
    }
    if (memory_context_check_flatviews(b.ctx) != 0) {
        fprintf(stderr, "flatview bench: check_flatviews after toggles: %s\n",
                memory_context_last_error(b.ctx));
        exit(1);
    }

    /* dispatch: lookups at random addresses inside random leaves */
    enum { NADDR = 1 << 16 };
    static uint64_t addr[NADDR], ioaddr[NADDR];
    size_t nio = 0;
    for (size_t i = 0; i < NADDR; i++) {
        size_t l = rnd() % b.nleaves;
        addr[i] = b.leaf_addr[l] + (rnd() % 0x1000);
        if (b.leaf_io[l])
            ioaddr[nio++] = b.leaf_addr[l] + (rnd() % 0x400) * 4;
    }
    fv = address_space_get_flatview(b.as);
    const unsigned lookups = 1000000, reads = 500000;
    uintptr_t sink = 0;
    double t_lookup = 1e9, t_read = 1e9;
    for (int rep = 0; rep < REPEAT; rep++) {
        t0 = now();
        for (unsigned i = 0; i < lookups; i++)
            sink += (uintptr_t)flatview_lookup(fv, addr[i & (NADDR - 1)]);
        double t = (now() - t0) / lookups;
        t_lookup = t < t_lookup ? t : t_lookup;
    }
    flatview_unref(fv);

    uint32_t v;
    for (int rep = 0; rep < REPEAT; rep++) {
        t0 = now();
        for (unsigned i = 0; i < reads; i++) {
            address_space_read(b.as, ioaddr[i % nio], &v, 4);
            sink += v;
        }
        double t = (now() - t0) / reads;
        t_read = t < t_read ? t : t_read;
    }

    printf("%8zu %8zu %9.1f %11.2f %10.2f %9.1f %10.0f %10.1f %11.2f\n", b.n, nranges,
           t_build * 1e3, t_full * 1e3, t_check * 1e3, t_toggle * 1e6, t_full / t_toggle,
           1e-6 / t_lookup, 1e-6 / t_read);
    if (sink == 42)
        printf("\n"); /* keep the loops */
    teardown(&b);
}

int main(int argc, char **argv)
{
    size_t sizes[8] = { 1000, 10000, 100000 };
    size_t nsizes = 3;
    unsigned toggles = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--sizes") && i + 1 < argc) {
            nsizes = 0;
            for (char *s = argv[++i]; *s && nsizes < 8;) {
                sizes[nsizes++] = strtoull(s, &s, 0);
                if (*s == ',')
                    s++;
            }
        } else if (!strcmp(argv[i], "--toggles") && i + 1 < argc) {
            toggles = (unsigned)atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: %s [--sizes N,N,...] [--toggles N]\n", argv[0]);
            return 2;
        }
    }
    printf("strata FlatView benchmark (one address space; per operation, best of %d runs)\n",
           REPEAT);
    printf("full   = address_space_new on the built tree (first render)\n");
    printf("check  = memory_context_check_flatviews (re-render from scratch + compare)\n");
    printf("toggle = set_enabled(false|true) on one random leaf, one commit each\n");
    printf("lookup = flatview_lookup at random mapped addresses\n");
    printf("read4  = address_space_read of 4 bytes to a random I/O leaf\n\n");
    printf("%8s %8s %9s %11s %10s %9s %10s %10s %11s\n", "regions", "ranges", "build ms", "full ms",
           "check ms", "toggle us", "full/tog", "lookup M/s", "read4 M/s");
    for (size_t i = 0; i < nsizes; i++)
        run(sizes[i], toggles ? toggles : (sizes[i] >= 100000 ? 200 : 2000));
    return 0;
}
