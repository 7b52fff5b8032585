/* SPDX-License-Identifier: MIT */
/*
 * How a device reports a fault it survives (a broken virtqueue, a bad PFN,
 * an I/O path given up): one line, handed to the sink the program set.
 * Without a sink the line goes to stderr as "strata: LINE".  devices/ knows
 * nothing of the program's log: the vmm/ root points the sink at it.
 */
#ifndef STRATA_DEVICES_REPORT_H
#define STRATA_DEVICES_REPORT_H

/* What the line is about. */
typedef enum DevReportKind {
    DEV_REPORT_FAULT,  /* the guest or the host did something the device refuses */
    DEV_REPORT_NOTICE, /* a fallback taken, nothing lost */
} DevReportKind;

/* Receives each line (no newline); any thread. */
typedef void (*DevReportSink)(DevReportKind kind, const char *line);

/* Sets the sink (NULL: stderr).  Call before any device thread starts. */
void dev_report_set_sink(DevReportSink sink);
/* Reports one line (printf format). */
void dev_report(DevReportKind kind, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif /* STRATA_DEVICES_REPORT_H */
