/* SPDX-License-Identifier: MIT */
/*
 * A fake migration destination for vmm/migration/destination.c's mig_load_fd
 * without /dev/kvm (fake_mig.c): one Vmm whose Machine has a real RAM
 * region (heap memory of exactly FAKE_MIG_RAM_SIZE bytes, so ASan sees a
 * write past it), the real serial, i8042, pvpanic, ACPI GED and test
 * devices and a real virtio-rng transport, FAKE_MIG_CPUS vCPUs and a fake
 * KVM layer that counts what was installed.  Also builds valid streams for that machine
 * (the real CONFIG text, mig_put_vm_state / mig_put_vcpu_state sections,
 * the devices' own save functions), recording where every record starts.
 */
#ifndef STRATA_TESTS_FUZZ_FAKE_MIG_H
#define STRATA_TESTS_FUZZ_FAKE_MIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvm/state.h"
#include "vmm/migration/migration.h"
#include "vmm/vmm.h"

#define FAKE_MIG_RAM_SIZE (256u << 10) /* 64 pages */
#define FAKE_MIG_CPUS 2
#define FAKE_MIG_NDEVS 6 /* serial i8042 pvpanic acpi-ged testdev virtio-rng */
#define FAKE_MIG_MAX_RECORDS 64

/* What the fake KVM layer saw and how it answers. */
typedef struct FakeMig {
    Vmm *v;                           /* the destination (built once) */
    uint8_t *ram;                     /* RAM block 0's bytes */
    unsigned vm_sets;                 /* kvm_vm_set_state calls */
    unsigned vcpu_sets;               /* kvm_vcpu_set_state calls */
    uint64_t vcpu_rip[FAKE_MIG_CPUS]; /* regs.rip installed per vCPU */
    uint64_t vm_clock;                /* clock installed by kvm_vm_set_state */
    uint32_t xsave_max;               /* kvm_vcpu_set_state refuses a larger XSAVE area */
    unsigned host_cpuid_sets;         /* vCPUs machine_set_pending_cpuid gave one */
    char last_error[128];             /* kvm_vm_last_error */
} FakeMig;

extern FakeMig fake_mig;

/* A stream being built, with the offset of every record. */
typedef struct MigStreamBuf {
    uint8_t *p;
    size_t len, cap;
    bool failed;                          /* an allocation failed */
    size_t rec_off[FAKE_MIG_MAX_RECORDS]; /* where record i starts */
    uint32_t rec_type[FAKE_MIG_MAX_RECORDS];
    unsigned nrec;
} MigStreamBuf;

/* How fake_mig_load's writer plays the source. */
typedef enum FakeMigPeer {
    FAKE_MIG_PEER_STREAM,    /* writes the bytes, then half-closes (GO, if any, is in them) */
    FAKE_MIG_PEER_HANDSHAKE, /* writes the bytes, answers GO!! to RDY! (complete streams only) */
} FakeMigPeer;

/* The outcome of one fake_mig_load. */
typedef struct FakeMigResult {
    int ret; /* mig_load_fd's */
    bool start_paused;
    uint32_t reply;   /* the loader's first answer (RDY!/ERR!), 0 if none read */
    uint32_t answer;  /* after RDY!: its answer to what followed (ACK!/ERR!) */
    char reason[256]; /* ERR!'s text, if read */
    char log[1024];   /* what the loader printed on stderr (when captured) */
} FakeMigResult;

/* Builds the fake destination (once; later calls return 0 at once).
 * 0, or -1 after printing why. */
int fake_mig_init(void);
/* Puts the machine back to power-on: RAM zeroed, devices reset, counters
 * and fake KVM answers to their defaults. */
void fake_mig_reset(void);
/* Feeds [data, data+len) to mig_load_fd over a socketpair (a writer
 * thread plays `peer`); capture: keep the loader's stderr in res->log.
 * 0, or -1 if the harness itself failed (socketpair, thread). */
int fake_mig_load(const uint8_t *data, size_t len, FakeMigPeer peer, bool capture,
                  FakeMigResult *res);

/* An empty stream buffer. */
void mig_sb_init(MigStreamBuf *sb);
/* Frees sb's bytes. */
void mig_sb_free(MigStreamBuf *sb);
/* Appends raw bytes. */
void mig_sb_bytes(MigStreamBuf *sb, const void *p, size_t n);
/* Appends a little-endian u32 / u64. */
void mig_sb_u32(MigStreamBuf *sb, uint32_t v);
void mig_sb_u64(MigStreamBuf *sb, uint64_t v);
/* Appends the 16-byte stream header. */
void mig_sb_header(MigStreamBuf *sb);
/* Appends one framed record (type, id, length, payload, CRC-32). */
void mig_sb_record(MigStreamBuf *sb, uint32_t type, uint32_t id, const void *payload, uint32_t len);

/* Record i of a stream built with mig_sb_record (a view into sb). */
typedef struct MigRec {
    uint32_t type, id, len;
    const uint8_t *payload;
} MigRec;
/* Record i of sb (i < sb->nrec). */
MigRec mig_sb_rec(const MigStreamBuf *sb, unsigned i);
/* Appends r again (framed anew, with a fresh CRC); r must not point into sb. */
void mig_sb_put(MigStreamBuf *sb, MigRec r);

/* Writes a pattern into the fake machine's RAM and non-reset values into
 * its devices, so that a stream made from it differs from power-on. */
void fake_mig_dirty_source(void);
/* The VM / vCPU state the fake source "has" (vCPU i: rip 0x1000 + i;
 * vCPU 0 with an XSAVE area and XCRs, the others with the legacy FPU). */
void fake_mig_vm_state(KvmVmState *st);
void fake_mig_vcpu_state(unsigned i, KvmVcpuState *st);

/* Options of fake_mig_build. */
typedef struct FakeMigBuild {
    bool paused; /* END says the source was paused */
    bool go;     /* append GO!! after END */
} FakeMigBuild;

/* Appends a complete valid stream of the fake machine's current RAM and
 * device state (and the fake_mig_*_state CPU state) to sb: header,
 * CONFIG, RAM (normal and zero pages, two rounds), VMSTATE, VCPU 0..n-1,
 * DEVICE 0..k-1, END.  0, or -1 after printing why. */
int fake_mig_build(MigStreamBuf *sb, const FakeMigBuild *opt);

/* Recomputes the CRC-32 of every whole record in [p, p+len) that follows
 * a 16-byte header (the fuzz target's CRC fix-up); fix_sections also the
 * section CRC inside VMSTATE / VCPU / DEVICE payloads. */
void mig_fix_crcs(uint8_t *p, size_t len, bool fix_sections);

#endif /* STRATA_TESTS_FUZZ_FAKE_MIG_H */
