/* SPDX-License-Identifier: MIT */
/*
 * --daemonize and --pidfile.
 *
 * KVM ties a VM to the process that created it (its memory map): a VM
 * built before a fork cannot run in the child.  So strata forks before it
 * builds anything, and the parent stays in the foreground until the child
 * says it runs: the parent then exits 0; if the child fails first, its
 * messages went to the terminal (stderr is still shared) and the parent
 * exits with the child's status.  Once ready, the child (in a session of
 * its own) has stdin, stdout and stderr on /dev/null.
 *
 * The pidfile is locked (an OFD write lock) for the process's life, so a
 * second strata given the same path is refused while the first lives,
 * whatever a stale file from a killed one says; it is removed at exit.
 */
#ifndef STRATA_VMM_DAEMON_H
#define STRATA_VMM_DAEMON_H

#include <stdbool.h>
#include <stddef.h>

typedef struct Daemon {
    int ready_fd; /* the child's end of the pipe to the waiting parent, or -1 */
    int null_fd;  /* /dev/null, for stdio once ready, or -1 */
    int pid_fd;   /* the locked pidfile, or -1 */
    char *pidfile;
} Daemon;

/* A Daemon with nothing open. */
void daemon_init(Daemon *d);
/*
 * Forks.  In the parent: waits for daemon_ready or the child's end, then
 * exits (never returns).  In the child: a new session; returns 0.  -1
 * with err set if nothing could be forked.
 */
int daemon_start(Daemon *d, char *err, size_t errlen);
/* Creates or opens path, locks it and writes this process's pid.  0, or -1
 * with err naming the file (and the pid holding it, if another does). */
int daemon_pidfile(Daemon *d, const char *path, char *err, size_t errlen);
/* The child is running: stdio to /dev/null, the parent told to exit 0.
 * No-op when daemon_start was not called. */
void daemon_ready(Daemon *d);
/* Removes and unlocks the pidfile, closes what is left. */
void daemon_end(Daemon *d);

#endif /* STRATA_VMM_DAEMON_H */
