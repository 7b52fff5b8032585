/* SPDX-License-Identifier: MIT */
/*
 * Changing the disks' and NICs' rate limits at run time (devices/
 * ratelimit.h): QEMU's block_set_io_throttle (total limits only) and
 * strata's x-net-set-rate-limit.  Main thread.
 */
#ifndef STRATA_VMM_CONTROL_THROTTLE_H
#define STRATA_VMM_CONTROL_THROTTLE_H

#include "vmm/control/qmp.h"

/* Their argument tables and handlers (opaque: the Vmm), for the command
 * table. */
extern const QmpArg vmm_block_throttle_args[];
extern const QmpArg vmm_net_limit_args[];
json_t *vmm_qmp_block_set_io_throttle(void *o, QmpClient *c, json_t *a, QmpError *err);
json_t *vmm_qmp_net_set_rate_limit(void *o, QmpClient *c, json_t *a, QmpError *err);

#endif /* STRATA_VMM_CONTROL_THROTTLE_H */
