/* SPDX-License-Identifier: MIT */
/*
 * Host side of the tiny-guest kit: a VM from a region tree in a few lines.
 *
 *     kit_require_kvm();                       // exit 77 (skip) if unusable
 *     Kit *k = kit_new(GUEST_ELF, NULL);       // RAM at 0, test device, vCPU
 *     ... add regions under kit_sysmem(k) / kit_iomem(k) ...
 *     KitResult r;
 *     kit_run(k, &r);                          // until the guest exits
 *     TEST_ASSERT(r.exited && r.code == 0, "guest: %s", r.text);
 *     kit_free(k);
 *
 * The kit owns one MemoryContext with a "system" root container (2^64) and
 * an "io" root (64 KiB), their address spaces "memory" and "I/O", a RAM
 * region "ram" at guest physical 0, the test device (devices/testdev-ports.h) in the I/O
 * space, a KVM VM with those attached, and vCPU 0 in the PVH entry state of
 * the loaded guest ELF with the host's supported CPUID already set (and,
 * with KitOptions.ncpus > 1, vCPUs 1.. waiting for INIT/SIPI).
 */
#ifndef STRATA_TESTS_KIT_H
#define STRATA_TESTS_KIT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvm/kvm.h"
#include "memory/memory.h"
#include "devices/testdev-ports.h"
#include "tests/common/check.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct Kit Kit;

typedef struct KitOptions {
    uint64_t ram_size;   /* bytes of RAM at 0; 0 = 32 MiB */
    bool irqchip;        /* in-kernel irqchip (HLT then never exits) */
    bool verbose;        /* kvm/'s verbose mode */
    unsigned max_slots;  /* kvm/'s max_slots (0 = all) */
    unsigned ncpus;      /* vCPUs (0 = 1); more than 1 implies irqchip: the
                             * APs (APIC IDs 1..ncpus-1) wait for INIT/SIPI
                             * (guest_start_aps); run them with kit_start */
    bool dirty_bitmap;   /* the dirty log from KVM_GET_DIRTY_LOG, never the ring */
    unsigned dirty_ring; /* ring entries per vCPU (0 = kvm/'s default: the ring
                          * where the host offers it) */
} KitOptions;

/* How a run ended. */
typedef struct KitResult {
    KvmEndReason reason; /* KVM_END_REQUESTED when the guest used EXIT */
    bool exited;         /* the guest wrote the EXIT port */
    uint32_t code;       /* its exit code (0 = pass) */
    char text[256];      /* kvm/'s end text ("hlt", "shutdown ...") */
} KitResult;

/* Handler of the SYNC port: gets the guest's phase, returns its answer. */
typedef uint32_t (*KitSyncFn)(Kit *k, uint32_t phase, void *opaque);

/* Exits with 77 (ctest's skip) after printing why, if /dev/kvm cannot run
 * strata guests here; also makes stdout line buffered. */
void kit_require_kvm(void);

/* A VM running the guest ELF at elf_path (opt may be NULL), or NULL after
 * printing why. */
Kit *kit_new(const char *elf_path, const KitOptions *opt);

/* Ends the VM (if running) and frees everything the kit made.  Regions the
 * test added must have been removed (or be removed by the test after). */
void kit_free(Kit *k);

/* The kit's pieces, for tests that build on them. */
MemoryContext *kit_ctx(Kit *k);
MemoryRegion *kit_sysmem(Kit *k);
MemoryRegion *kit_iomem(Kit *k);
MemoryRegion *kit_ram(Kit *k);
AddressSpace *kit_memory_as(Kit *k);
AddressSpace *kit_io_as(Kit *k);
KvmVm *kit_vm(Kit *k);
KvmVcpu *kit_vcpu(Kit *k);
/* Number of vCPUs (KitOptions.ncpus); vCPU i is kvm_vm_vcpu(kit_vm(k), i). */
unsigned kit_ncpus(Kit *k);

/* The entry point from the guest's PVH note (XEN_ELFNOTE_PHYS32_ENTRY),
 * or 0 if the ELF has none (then e_entry was used). */
uint64_t kit_pvh_entry(Kit *k);
/* Guest physical address of an ELF symbol of the guest, or 0. */
uint64_t kit_symbol(Kit *k, const char *name);
/* Host pointer to [gpa, gpa+len) of the kit's RAM, or NULL if outside. */
void *kit_ram_ptr(Kit *k, uint64_t gpa, uint64_t len);
/* Host pointer to the guest variable `name` of `len` bytes; aborts the
 * test if there is no such symbol in RAM. */
void *kit_guest_var(Kit *k, const char *name, uint64_t len);

/* Installs the SYNC handler (NULL: answer 0).  In kit_run it runs on the
 * calling thread, so it may change the region tree; after kit_start it
 * runs on the vCPU thread and must not. */
void kit_set_sync_handler(Kit *k, KitSyncFn fn, void *opaque);

/* Runs vCPU 0 on the calling thread until the guest exits, HLT, SHUTDOWN
 * or an error; returns r->reason.  May be called again after HLT.  Only for
 * a single-vCPU kit (else KVM_END_ERROR at once: use kit_start/kit_wait). */
KvmEndReason kit_run(Kit *k, KitResult *r);

/* Starts every vCPU on its own thread (kvm/'s run loop). */
int kit_start(Kit *k);
/* Waits for a kit_start()ed VM to end; returns r->reason. */
KvmEndReason kit_wait(Kit *k, KitResult *r);

/* Values the guest reported (REPORT port), in order. */
const uint32_t *kit_reports(Kit *k, size_t *n);
/* Number of SYNC writes so far. */
unsigned kit_sync_count(Kit *k);

/* Prints the KVM slot table (kvm_vm_get_slots) to f. */
void kit_dump_slots(Kit *k, FILE *f);

/* Sleeps ms milliseconds. */
void kit_sleep_ms(unsigned ms);
/* Waits (no deadline: ctest's timeout catches a hang) for a guest counter
 * to pass `than`; its value then. */
uint64_t kit_wait_above(volatile uint64_t *counter, uint64_t than);

/* ---- A recording device ------------------------------------------------ */

#define KIT_REC_MAX 4096

/* One access seen by a KitRecorder's ops. */
typedef struct KitAccess {
    uint64_t addr; /* offset in the region, as ops got it */
    uint64_t data;
    unsigned size;
    bool write;
} KitAccess;

/*
 * An I/O region that logs every ops call, in order.  Reads return
 * (read_base + addr) truncated to the access size.  Its ops are a copy the
 * test may adjust (impl/valid sizes) before placing the region.
 */
typedef struct KitRecorder {
    MemoryRegion mr;
    MemoryRegionOps ops;
    pthread_mutex_t lock;
    KitAccess log[KIT_REC_MAX];
    size_t n; /* accesses so far (the log keeps the first KIT_REC_MAX) */
    uint64_t read_base;
} KitRecorder;

/* Initialises r as an I/O region of `size` bytes in k's context whose
 * callbacks implement accesses up to impl_max bytes (0 = 8). */
int kit_recorder_init(KitRecorder *r, Kit *k, const char *name, uint64_t size, unsigned impl_max);
/* Initialises r as a rom_device of `size` bytes whose ops are the recorder's. */
int kit_recorder_init_romd(KitRecorder *r, Kit *k, const char *name, uint64_t size);
/* Number of accesses so far (reads + writes). */
size_t kit_recorder_count(KitRecorder *r);
/* Copy of access i (i < min(count, KIT_REC_MAX)). */
KitAccess kit_recorder_get(KitRecorder *r, size_t i);
/* Forgets every access. */
void kit_recorder_reset(KitRecorder *r);
/* Removes r from its container (if any) and destroys the region. */
void kit_recorder_destroy(KitRecorder *r);

/* Fails the test unless cond holds: tests/common/check.h's CHECK under the
 * name the KVM selftests use (prints file:line and the message, exits 1). */
#define TEST_ASSERT(cond, ...) CHECK(cond, __VA_ARGS__)

/* Asserts a run ended with the guest's EXIT code 0. */
#define TEST_ASSERT_GUEST_PASSED(r) \
    TEST_ASSERT((r)->exited && (r)->code == 0, \
                "guest did not pass: exited=%d code=%#x end=\"%s\"", (r)->exited, (r)->code, \
                (r)->text)

#ifdef __cplusplus
}
#endif
#endif /* STRATA_TESTS_KIT_H */
