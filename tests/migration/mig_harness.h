/* SPDX-License-Identifier: MIT */
/*
 * The migration tests' harness (mig_test.c's suite, soak.c's soak): strata
 * processes started with a tiny guest, each dying with the test program;
 * QMP helpers that fail the test on error; a migration to a fresh
 * destination that must complete with the guest going on there.
 */
#ifndef STRATA_TESTS_MIG_HARNESS_H
#define STRATA_TESTS_MIG_HARNESS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>

#include "check.h"
#include "qmp_client.h"

typedef struct Vm {
    pid_t pid;
    char sock[128];
    char log[128];
    QClient *c;
} Vm;

extern char tmpdir[64]; /* this run's scratch folder */
/* the strata binary and the guests (the build's, or the environment's) */
extern const char *guest_elf, *idle_elf, *pio_elf, *strata_bin;
extern const char *vm_cpus;       /* --cpus of the next strata started */
extern const char *vm_disk;       /* --disk of the next strata started (NULL: none) */
extern const char *vm_dirty_ring; /* --dirty-ring of the next strata started (NULL: default) */
extern uint64_t pass_addr, counter_addr; /* the guests' counters (xp) */

#define MIG_SEEN(name) (1u << mig_status_index(name))

/* Kills the strata processes still running, removes tmpdir (atexit). */
void cleanup(void);
/* Sleeps ms milliseconds. */
void msleep(unsigned ms);
/* CLOCK_MONOTONIC in seconds. */
double now_s(void);
/* strata run --kernel ELF --test-device --serial none --memory MEMORY
 * --cpus vm_cpus --api-socket tmpdir/NAME.qmp [--incoming=INCOMING], log in
 * tmpdir/NAME.log; it dies with this program. */
extern const char *peer_bin;
void start_vm(Vm *vm, const char *name, const char *elf, const char *memory, const char *incoming);
/* vm's exit status if it has exited (reaped), else -1. */
int vm_reap(Vm *vm);
/* vm's exit status, waiting up to timeout_ms (-1 if still running). */
int vm_wait(Vm *vm, unsigned timeout_ms);
/* Connects to vm's control socket once it listens (fails if it exits). */
void vm_connect(Vm *vm);
/* Runs a command that must succeed; its "return" (new reference). */
json_t *cmd_ok(Vm *vm, const char *name, const char *args);
/* query-status's status, into buf (returned). */
const char *run_status(Vm *vm, char *buf, size_t n);
/* Runs a command that must fail with an error whose text holds want. */
void cmd_refused(Vm *vm, const char *name, const char *args, const char *want);
/* The guest's 64-bit word at guest-physical addr (xp). */
uint64_t read_u64(Vm *vm, uint64_t addr);
/* Waits until the guest's pass counter reaches want; its value. */
uint64_t wait_pass(Vm *vm, uint64_t want, unsigned timeout_ms);
/* Polls query-migrate to a final status, whose MIGRATION event must have
 * come first; the reply (new reference). */
json_t *wait_migration(Vm *src, unsigned timeout_ms);
/* Called by wait_migration with each query-migrate reply it polls (NULL:
 * none): a test's look at the migration while it runs. */
extern void (*mig_poll_hook)(json_t *q);
/* Whether a MIGRATION event announcing status is among vm's queued events. */
bool mig_announced(Vm *vm, const char *status);
/* query-migrate's status. */
const char *status_of(json_t *q);
/* The index of a migration status name (for MIG_SEEN). */
unsigned mig_status_index(const char *name);
/* Reads the MIGRATION events up to the one announcing `final`; the set of
 * statuses seen (MIG_SEEN bits). */
unsigned drain_migration(Vm *vm, const char *final);
/* True if vm's log holds text. */
bool log_has(const Vm *vm, const char *text);
/* A destination waiting on tmpdir/NAME.in (unix) or loopback TCP (NAME
 * "tcp-..."); its URI in uri. */
void start_dest(Vm *dst, const char *name, const char *elf, const char *memory, char *uri,
                size_t urilen);
/* Migrates src to a fresh destination that must go on with the guest (RAM
 * verified for a dirtying guest); *src becomes the destination.  Returns the
 * final query-migrate (new reference). */
json_t *migrate_ok(Vm *src, const char *name, const char *elf, const char *params, bool dirty,
                   unsigned timeout_ms);
/* The value of an ELF symbol of the file at path. */
uint64_t elf_symbol(const char *path, const char *name);
/* The soak (soak.c): the 2-vCPU guest smp_elf migrated `hops` times. */
int soak(const char *smp_elf, unsigned hops);
/* stress.c: the dirty log switched on, taken and off, and the guest
 * stopped and continued, in a loop for `seconds` (mig-test --dirty-stress). */
int dirty_stress(const char *one_elf, const char *smp_elf, unsigned seconds);
/* The handover under faults (handover.c). */
int handover_suite(void);
/* snapshot.c: save, restore, clones, bad files (mig-test --snapshot). */
int snapshot_suite(void);
/* autoconverge.c: a guest faster than the link, with and without the
 * auto-converge capability (mig-test --auto-converge). */
int auto_converge_suite(void);
/* dirtylog.c: the dirty ring and the bitmap as the dirty log, x-dirty-log,
 * calc-dirty-rate / query-dirty-rate (mig-test --dirty-log). */
int dirty_log_suite(void);
/* incoming.c: --incoming defer and migrate-incoming, driven as libvirt
 * drives a destination (mig-test --incoming). */
int incoming_suite(void);

#endif /* STRATA_TESTS_MIG_HARNESS_H */
