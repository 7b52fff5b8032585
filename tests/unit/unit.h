/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers of the memory/ unit tests: a fixture that owns a context,
 * a 2^64 "system" root and an address space, and tears every region down
 * (checking that destroy succeeds); a fake device that records its calls;
 * a listener that records what it is told; flat-view assertions.
 */
#ifndef STRATA_TESTS_UNIT_H
#define STRATA_TESTS_UNIT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "memory/memory.h"

/* ---- fake device ------------------------------------------------------ */

#define TESTDEV_MEM 0x1000u
#define TESTDEV_LOG 256u

typedef struct TestDevCall {
    bool write;
    uint64_t addr;
    uint64_t data;
    unsigned size;
} TestDevCall;

/* A device whose registers behave like little-endian memory (memlike) or
 * always read `read_value`; every call is logged. */
typedef struct TestDev {
    bool memlike;
    uint64_t read_value;
    uint8_t mem[TESTDEV_MEM];
    unsigned nreads, nwrites, ncalls;
    TestDevCall log[TESTDEV_LOG];
} TestDev;

/* Callbacks usable in any MemoryRegionOps; opaque must be a TestDev. */
uint64_t testdev_read(void *opaque, uint64_t addr, unsigned size);
void testdev_write(void *opaque, uint64_t addr, uint64_t data, unsigned size);
/* Clears the call log (keeps mem and read_value). */
void testdev_reset_log(TestDev *d);
/* Little-endian ops over a TestDev with no valid/impl constraints. */
extern const MemoryRegionOps plain_ops;

/* Little-endian memory-like device: valid and impl 1..8, unaligned ok. */
extern const MemoryRegionOps testdev_ops;

/* ---- fixture ---------------------------------------------------------- */

#define FIX_MAX_REGIONS 128u
#define FIX_MAX_AS 8u

typedef struct Fix {
    MemoryContext *ctx;
    MemoryRegion *root; /* "system", 2^64 container */
    AddressSpace *as;   /* "memory", rooted at root */
    MemoryRegion *regs[FIX_MAX_REGIONS];
    bool live[FIX_MAX_REGIONS]; /* initialised: destroy at teardown */
    unsigned nregs;
    AddressSpace *ases[FIX_MAX_AS];
    unsigned nas;
} Fix;

/* cmocka setup/teardown: *state becomes a Fix. */
int fix_setup(void **state);
int fix_teardown(void **state);

/* Region constructors: allocate, init (asserting success), track for
 * teardown.  Teardown unmaps and destroys them newest first. */
MemoryRegion *fx_container(Fix *f, const char *name, uint64_t size);
MemoryRegion *fx_ram(Fix *f, const char *name, uint64_t size);
MemoryRegion *fx_rom(Fix *f, const char *name, uint64_t size);
MemoryRegion *fx_io(Fix *f, const MemoryRegionOps *ops, void *opaque, const char *name,
                    uint64_t size);
MemoryRegion *fx_alias(Fix *f, const char *name, MemoryRegion *orig, uint64_t offset,
                       uint64_t size);
MemoryRegion *fx_romdev(Fix *f, const MemoryRegionOps *ops, void *opaque, const char *name,
                        uint64_t size);
/* An uninitialised tracked slot (for tests that call init themselves). */
MemoryRegion *fx_slot(Fix *f);
/* Record that a slot was initialised successfully (destroy at teardown). */
void fx_live(Fix *f, MemoryRegion *mr);
/* Stop tracking mr (the test destroyed it) and free its storage. */
void fx_forget(Fix *f, MemoryRegion *mr);
/* A tracked address space (destroyed at teardown). */
AddressSpace *fx_as(Fix *f, MemoryRegion *root, const char *name);
/* Destroy a tracked address space now. */
void fx_as_destroy(Fix *f, AddressSpace *as);

/* ---- flat-view assertions -------------------------------------------- */

typedef struct ExpRange {
    uint64_t start;
    Int128 size;
    MemoryRegion *mr;
    uint64_t offset;
} ExpRange;

/* Prints the FlatView of as (for failure messages). */
void dump_flatview(AddressSpace *as);
/* Asserts that as's FlatView is exactly exp[0..n). */
void expect_flatview(AddressSpace *as, const ExpRange *exp, size_t n);
/* An ExpRange literal, and the length of an array. */
#define R(s, sz, m, o) \
    { \
        .start = (s), .size = (Int128)(sz), .mr = (m), .offset = (o) \
    }
#define NR(a) (sizeof(a) / sizeof((a)[0]))
/* Number of ranges in as's FlatView. */
size_t fv_count(AddressSpace *as);

/* ---- dispatch helpers ------------------------------------------------- */

/* size-byte read/write (1/2/4/8) of a little-endian value. */
MemTxResult as_rd(AddressSpace *as, uint64_t addr, unsigned size, uint64_t *val);
MemTxResult as_wr(AddressSpace *as, uint64_t addr, unsigned size, uint64_t val);
/* Read that asserts MEMTX_OK and returns the value. */
uint64_t rd_ok(AddressSpace *as, uint64_t addr, unsigned size);
/* Write that asserts MEMTX_OK. */
void wr_ok(AddressSpace *as, uint64_t addr, unsigned size, uint64_t val);

/* ---- recording listener ---------------------------------------------- */

enum RecKind {
    EV_BEGIN,
    EV_COMMIT,
    EV_ADD,
    EV_DEL,
    EV_NOP,
    EV_LOG_START,
    EV_LOG_STOP,
    EV_LOG_SYNC,
    EV_EVENTFD_ADD,
    EV_EVENTFD_DEL,
    EV_COALESCED_ADD,
    EV_COALESCED_DEL,
    EV__COUNT
};

typedef struct RecEvent {
    enum RecKind kind;
    MemoryRegion *mr;
    AddressSpace *as;
    uint64_t start; /* offset_within_address_space */
    Int128 size;
    uint64_t offset; /* offset_within_region */
    bool readonly, romd;
    int old_mask, new_mask;
    bool match_data;
    uint64_t data;
    int fd;
    uint64_t addr, len; /* coalesced */
} RecEvent;

#define REC_MAX_EVENTS 512u

typedef struct Rec {
    MemoryListener l; /* first: callbacks cast back */
    unsigned n[EV__COUNT];
    RecEvent ev[REC_MAX_EVENTS];
    unsigned nev;
    int depth;           /* begin/commit nesting seen */
    unsigned outside;    /* region/log callbacks outside begin..commit */
    unsigned unbalanced; /* commit without begin, begin inside begin */
    /* Optional hook run on log_sync (e.g. to feed set_dirty_bitmap). */
    void (*on_log_sync)(struct Rec *r, MemoryRegionSection *s);
    void *user;
} Rec;

/* Fills every callback of r->l with a recorder; counts start at 0. */
void rec_init(Rec *r);
/* Zeroes counts and the event log. */
void rec_reset(Rec *r);
/* Number of events of kind k naming region mr. */
unsigned rec_count_mr(const Rec *r, enum RecKind k, const MemoryRegion *mr);
/* Prints the event log (for failure messages). */
void rec_dump(const Rec *r);

/* True if haystack contains needle. */
bool contains(const char *haystack, const char *needle);

#endif
