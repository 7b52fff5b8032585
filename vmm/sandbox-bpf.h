/* SPDX-License-Identifier: MIT */
/*
 * The sandbox's filters as BPF programs (internal to vmm/sandbox*.c, its
 * generator and its tests).
 *
 * Compiling a role's rules with libseccomp costs 0.1-0.5 ms per thread,
 * on the way to a running guest for main, a restore's migration thread and
 * every vCPU.  So vmm/sandbox-gen.c compiles every role in both modes at
 * build time, twice, with two different pids: the instructions that differ
 * are the places the process's pid goes (tgkill's target), and nothing else
 * may differ.  sandbox_enter copies a program, writes its pid there and
 * loads it.  tests/sandbox checks that the result equals what libseccomp
 * makes at run time for several pids, for every role and mode.
 */
#ifndef STRATA_VMM_SANDBOX_BPF_H
#define STRATA_VMM_SANDBOX_BPF_H

#include <linux/filter.h>
#include <seccomp.h>
#include <stddef.h>

#include "vmm/sandbox.h"

#define SANDBOX_BPF_MAX 1024 /* instructions; the largest role has ~170 */

typedef struct SandboxProgram {
    const struct sock_filter *insn;
    unsigned short len;           /* 0: none made at build time (libseccomp at run time) */
    unsigned short npid;          /* how many instructions compare with the pid */
    const unsigned short *pid_at; /* their indices */
} SandboxProgram;

/* [role][0 = SANDBOX_KILL, 1 = SANDBOX_LOG]; generated (sandbox-bpf.c in the build folder) */
extern const SandboxProgram sandbox_programs[SANDBOX_NROLES][2];

/* The native architecture's syscall names by number (NULL: none), as the
 * build host's libseccomp knows them; generated too. */
#define SANDBOX_MAX_NR 512 /* x86-64 syscall numbers stay below this */
extern const char *const sandbox_syscall_names[SANDBOX_MAX_NR];

/* The build-time program of role and mode with pid written in, into out
 * (cap instructions).  Its length, 0 where there is none, -errno. */
int sandbox_program(SandboxRole role, SandboxMode mode, pid_t pid, struct sock_filter *out,
                    size_t cap);

/* libseccomp's filter context for role and mode, tgkill limited to pid;
 * NULL with *err = -errno on failure.  The caller releases it. */
scmp_filter_ctx sandbox_rules_ctx(SandboxRole role, SandboxMode mode, pid_t pid, int *err);

/* The same filter as a BPF program (malloc'ed, *len instructions). 0 or -errno. */
int sandbox_rules_bpf(SandboxRole role, SandboxMode mode, pid_t pid, struct sock_filter **prog,
                      size_t *len);

#endif /* STRATA_VMM_SANDBOX_BPF_H */
