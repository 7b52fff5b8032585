/* SPDX-License-Identifier: MIT */
/* The human monitor commands served through QMP's human-monitor-command. */
#ifndef STRATA_VMM_CONTROL_HMP_H
#define STRATA_VMM_CONTROL_HMP_H

#include "vmm/control/qmp.h"

struct Vmm;

/*
 * Runs one HMP command line ("info mtree -f", "info status", "info kvm",
 * "info cpus", "xp /4xw 0x100000", "stop", "cont", "system_reset", "quit",
 * "help") and returns its output (malloc()ed, possibly ""), or NULL with
 * err set for an unknown command or bad arguments.
 */
char *hmp_execute(struct Vmm *v, const char *line, QmpError *err);

#endif /* STRATA_VMM_CONTROL_HMP_H */
