/* SPDX-License-Identifier: MIT */
/* Device fault reports (see report.h). */
#include "devices/report.h"

#include <stdarg.h>
#include <stdio.h>

static DevReportSink report_sink; /* set before device threads start */

void dev_report_set_sink(DevReportSink sink)
{
    report_sink = sink;
}

void dev_report(DevReportKind kind, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (report_sink)
        report_sink(kind, line);
    else
        fprintf(stderr, "strata: %s\n", line);
}
