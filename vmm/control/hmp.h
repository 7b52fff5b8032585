/* SPDX-License-Identifier: MIT */
/* The human monitor commands served through QMP's human-monitor-command. */
#ifndef STRATA_VMM_CONTROL_HMP_H
#define STRATA_VMM_CONTROL_HMP_H

#include "vmm/control/qmp.h"

struct Vmm;

/*
 * Runs one HMP command line ("info mtree -f", "info status", "info kvm",
 * "info cpus", "info registers", "info version", "xp /4xw 0x100000",
 * "stop", "cont", "system_reset", "system_powerdown", "quit", "help") and
 * returns its output as QEMU's monitor gives it: malloc()ed, possibly "",
 * every line ending in "\r\n".  An unknown command or `info` item is output
 * too, QEMU's "unknown command: 'NAME'"; bare `info` lists the items.  NULL
 * with err set for bad arguments or a failed action.
 */
char *hmp_execute(struct Vmm *v, const char *line, QmpError *err);

#endif /* STRATA_VMM_CONTROL_HMP_H */
