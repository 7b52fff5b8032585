/* SPDX-License-Identifier: MIT */
/*
 * Processes a test starts never outlive it: each child is tied to the test
 * with PR_SET_PDEATHSIG (it gets SIGKILL when the test ends, however it ends:
 * exit, crash, ctest's timeout kill), and a test that starts finds and names
 * the strata processes an earlier run left behind.
 */
#ifndef STRATA_TESTS_TESTPROC_H
#define STRATA_TESTS_TESTPROC_H

#include <sys/types.h>

/* Call in the child right after fork(), before exec: it dies with the test
 * process `parent` (getpid() taken before the fork), and exits at once if the
 * test already ended before this line ran. */
void testproc_child_init(pid_t parent);

/* Marks the caller's scratch folder `own_dir` (/tmp/strata-*) as owned by
 * this process (a .owner file with its pid), then finds processes running
 * the strata binary `bin` whose parent is gone (reparented to init) and
 * whose command line names a scratch folder whose owner is not alive:
 * strays of an earlier test run.  A strata that a running test daemonized
 * (its parent is init too) is spared: its folder's owner lives.  Prints a
 * line naming each stray, ends it (SIGKILL) and returns how many there
 * were. */
int testproc_sweep_strays(const char *bin, const char *own_dir);

/* For a process the test cannot tie to itself (a --daemonize'd strata is
 * no child of it): starts a guard that SIGKILLs pid as soon as the test
 * ends, however it ends (the guard sees its pipe's end close).  Returns
 * the fd that testproc_guard_disarm takes, or -1 if no guard started. */
int testproc_guard(pid_t pid);
/* The process ended as it should: its guard leaves without killing. */
void testproc_guard_disarm(int fd);

#endif /* STRATA_TESTS_TESTPROC_H */
