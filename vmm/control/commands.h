/* SPDX-License-Identifier: MIT */
/* strata's QMP commands (QEMU's names), served on --api-socket. */
#ifndef STRATA_VMM_CONTROL_COMMANDS_H
#define STRATA_VMM_CONTROL_COMMANDS_H

#include <stddef.h>

#include "devices/device.h"
#include "vmm/control/qmp.h"

typedef struct Vmm Vmm;

/* The command table; each handler's opaque is the Vmm. */
extern const QmpCommand vmm_qmp_commands[];
extern const size_t vmm_qmp_ncommands;

/* The n-th device (from 0, in the board's list order) whose ops are ops:
 * its state (a VirtioBlk for virtio_blk_device_ops, ...), or NULL. */
void *vmm_device(Vmm *v, const DeviceOps *ops, unsigned n);
/* Runs the served command `name` without arguments, as a client would
 * (HMP and the statistics on top of QMP): its "return" (a new reference),
 * or NULL with err set (CommandNotFound where it is not served). */
json_t *vmm_qmp_call(Vmm *v, const char *name, QmpError *err);

/* query-balloon's answer (QEMU's: "actual", guest RAM less what the guest
 * gave up, in bytes; "guest-stats" once the guest reported some), or NULL
 * with err set (DeviceNotActive without --balloon). */
json_t *vmm_query_balloon(Vmm *v, QmpError *err);
/* Sends BALLOON_CHANGE to the QMP clients whenever the guest's balloon
 * changes size (main loop; no-op without --balloon or a QMP server).  0,
 * or -1 after printing why. */
int vmm_balloon_watch(Vmm *v);

#endif /* STRATA_VMM_CONTROL_COMMANDS_H */
