/* SPDX-License-Identifier: MIT */
/* Restricted io_uring rings (see uring.h). */
#include "devices/uring.h"

#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_RULES 16

/* io_uring_register(2) by hand: Debian's liburing 2.3 declares
 * io_uring_register_restrictions and io_uring_enable_rings but does not
 * export them (fixed in liburing 2.4). */
static int ring_register(struct io_uring *ring, unsigned op, const void *arg, unsigned n)
{
    long r = syscall(__NR_io_uring_register, ring->ring_fd, op, arg, n);
    return r < 0 ? -errno : 0;
}

int uring_init_restricted(struct io_uring *ring, unsigned entries, const UringRules *rules,
                          const char **what)
{
    struct io_uring_restriction res[MAX_RULES];
    unsigned n = 0;
    const char *step = "restriction list";
    if (rules->nops + 1 > MAX_RULES) {
        if (what)
            *what = step;
        return -E2BIG;
    }
    memset(res, 0, sizeof(res));
    for (unsigned i = 0; i < rules->nops; i++) {
        res[n].opcode = IORING_RESTRICTION_SQE_OP;
        res[n++].sqe_op = rules->ops[i];
    }
    if (rules->nfiles) {
        res[n].opcode = IORING_RESTRICTION_SQE_FLAGS_REQUIRED;
        res[n++].sqe_flags = IOSQE_FIXED_FILE;
    }
    /* No IORING_RESTRICTION_SQE_FLAGS_ALLOWED: no other SQE flag, and no
     * IORING_RESTRICTION_REGISTER_OP: no io_uring_register once enabled. */
    step = "io_uring_setup";
    int r = io_uring_queue_init(entries, ring, IORING_SETUP_R_DISABLED);
    if (r == 0 && rules->nfiles) {
        step = "IORING_REGISTER_FILES";
        r = io_uring_register_files(ring, rules->files, rules->nfiles);
        if (r < 0)
            io_uring_queue_exit(ring);
    }
    if (r == 0) {
        step = "IORING_REGISTER_RESTRICTIONS";
        r = ring_register(ring, IORING_REGISTER_RESTRICTIONS, res, n);
        if (r == 0) {
            step = "IORING_REGISTER_ENABLE_RINGS";
            r = ring_register(ring, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
        }
        if (r < 0)
            io_uring_queue_exit(ring);
    }
    if (r < 0 && what)
        *what = step;
    return r;
}
