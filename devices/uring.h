/* SPDX-License-Identifier: MIT */
/*
 * io_uring rings that can do only what their owner needs.  seccomp filters
 * syscalls, and the work a ring does (open, connect, send, read) is no
 * syscall of the thread: a thread allowed io_uring_enter could otherwise do
 * through a ring all that its filter forbids.  A ring made here is created
 * disabled (IORING_SETUP_R_DISABLED), its fixed files are registered, it is
 * restricted (IORING_REGISTER_RESTRICTIONS) to a list of SQE opcodes (every
 * other completes with -EACCES), to fixed files only when it has some
 * (IOSQE_FIXED_FILE required, so it reaches no other fd), and to no further
 * io_uring_register operation (-EACCES), and only then enabled.  Needs Linux
 * 5.10; where the kernel cannot restrict a ring there is no ring: callers
 * fall back or refuse, never run an unrestricted one.
 */
#ifndef STRATA_DEVICES_URING_H
#define STRATA_DEVICES_URING_H

#include <liburing.h>
#include <stdint.h>

typedef struct UringRules {
    const uint8_t *ops; /* the IORING_OP_* allowed */
    unsigned nops;
    const int *files; /* registered as fixed files 0..nfiles-1; then */
    unsigned nfiles;  /* every SQE must use one (IOSQE_FIXED_FILE) */
} UringRules;

/*
 * Sets up ring (`entries` SQEs) allowing only what rules allow.  0, or a
 * negative errno with *what (unless NULL) naming the step the kernel
 * refused (e.g. "IORING_REGISTER_RESTRICTIONS"); then no ring is left.
 */
int uring_init_restricted(struct io_uring *ring, unsigned entries, const UringRules *rules,
                          const char **what);

#endif /* STRATA_DEVICES_URING_H */
