/* SPDX-License-Identifier: MIT */
/* strata's QMP commands (QEMU's names), served on --api-socket. */
#ifndef STRATA_VMM_CONTROL_COMMANDS_H
#define STRATA_VMM_CONTROL_COMMANDS_H

#include <stddef.h>

#include "vmm/control/qmp.h"

/* The command table; each handler's opaque is the Vmm. */
extern const QmpCommand vmm_qmp_commands[];
extern const size_t vmm_qmp_ncommands;

#endif /* STRATA_VMM_CONTROL_COMMANDS_H */
