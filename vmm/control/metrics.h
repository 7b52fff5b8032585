/* SPDX-License-Identifier: MIT */
/*
 * The --metrics file (docs/stats.md): every interval, one JSON object on
 * one line appended to a file (or written to a FIFO), as x-query-stats
 * answers it.  The file and its timer (a timerfd in the main loop) are
 * made before the sandbox; the main thread writes the lines, with the
 * read(2) and write(2) its filter has anyway, so no syscall is added.  The
 * fd is non-blocking: a FIFO nobody drains loses lines, it never stalls
 * the loop.  A failed or short write is reported once on stderr; the VM
 * goes on, and later lines are still tried.
 */
#ifndef STRATA_VMM_CONTROL_METRICS_H
#define STRATA_VMM_CONTROL_METRICS_H

#include <jansson.h>

typedef struct Metrics Metrics;

/* What a line holds: a new JSON object (NULL: nothing is written). */
typedef json_t *(*MetricsCollect)(void *opaque);

/*
 * Opens path for appending (created 0600 if absent; a FIFO must have a
 * reader) and, if epfd >= 0, arms a timer that writes a line every
 * interval_s seconds from epfd's loop.  The Metrics, or NULL after
 * printing one line naming the path.
 */
Metrics *metrics_open(const char *path, unsigned interval_s, int epfd, MetricsCollect collect,
                      void *opaque);
/* Writes one line now.  0, or a negative errno (reported on stderr the
 * first time only). */
int metrics_write(Metrics *m);
/* Writes failed so far. */
unsigned long metrics_failures(const Metrics *m);
/* Stops the timer and closes the file; NULL is a no-op. */
void metrics_close(Metrics *m);

#endif /* STRATA_VMM_CONTROL_METRICS_H */
