/* SPDX-License-Identifier: MIT */
/*
 * Helpers of the QMP integration test: start strata, wait for its socket,
 * run commands that must succeed or fail, read the guest's counter, build
 * the expected memory tree with memory/.
 */
#ifndef STRATA_TESTS_QMP_HARNESS_H
#define STRATA_TESTS_QMP_HARNESS_H

#include <stdint.h>
#include <sys/types.h>

#include "memory/memory.h"
#include "check.h"
#include "qmp_client.h"

extern char tmpdir[64];       /* per-run scratch folder */
extern pid_t strata_pid;      /* the strata being tested, or -1 */
extern char sock_path[128];   /* its --api-socket */
extern uint64_t counter_addr; /* guest physical address of spin_counter */

/* The common start of a test: exits 77 (printing why) where /dev/kvm
 * cannot run guests, makes tmpdir /tmp/strata-NAME-XXXXXX (removed with
 * any strata still running, at exit), ignores SIGPIPE, names and ends the
 * strata strays of earlier runs and sets sock_path to tmpdir/qmp.sock.
 * stdout is unbuffered. */
void harness_init(const char *name);
/* A file's contents (malloc()ed; "" if unreadable). */
char *slurp(const char *path);
/* Kills a strata still running and removes tmpdir (atexit). */
void cleanup(void);
/* Sleeps ms milliseconds. */
void msleep(unsigned ms);
/* Starts `strata run` with the given NULL-terminated arguments, stdout and
 * stderr to tmpdir/stdout.txt and stderr.txt; it dies with the test. */
pid_t spawn(const char *first, ...);
/* The same with the logs in tmpdir/TAG-stdout.txt and TAG-stderr.txt (a
 * second strata beside the first, e.g. a migration's destination). */
pid_t spawn_as(const char *tag, const char *first, ...);
/* Waits for pid; its exit status (128+N if killed by signal N). */
int wait_status(pid_t pid);
/* tmpdir/name's contents (malloc()ed). */
char *read_log(const char *name);
/* CLOCK_MONOTONIC in seconds. */
double now_s(void);
/* strata_pid's resident set (VmRSS) in KiB; fails the test if unreadable. */
long long strata_rss_kib(void);
/* Waits (secs at most) until tmpdir/log holds text; fails the test if
 * strata_pid ends first or the log says "guest exited" without it. */
void wait_log_text(const char *log, const char *text, double secs);
/* A raw connection, once strata listens (no deadline; fails if it exits). */
QClient *connect_when_ready(pid_t pid);
/* A negotiated connection to strata_pid. */
QClient *open_client(void);
/* The error class / description of a reply, or NULL. */
const char *desc_of(json_t *r);
const char *class_of(json_t *r);
/* Runs a command that must succeed; its "return" (new reference). */
json_t *ok(QClient *c, const char *name, const char *args);
/* Runs a command that must fail with class cls, desc containing sub. */
void fails(QClient *c, const char *name, const char *args, const char *cls, const char *sub);
/* Output of a human monitor command that must succeed (malloc()ed); its
 * lines must end in "\r\n", as QEMU's, and come back ending in "\n". */
char *hmp(QClient *c, const char *line);
/* Value of an ELF symbol of the file at path (fails the test if absent). */
uint64_t elf_symbol(const char *path, const char *name);
/* The guest's spin_counter, read with `xp`. */
uint64_t read_counter(QClient *c);
/* The machine's tree for 256M + test device + serial, built here with
 * memory/, printed by mtree_info_str with flags (malloc()ed). */
char *expected_mtree(unsigned flags);

#endif /* STRATA_TESTS_QMP_HARNESS_H */
