/* SPDX-License-Identifier: MIT */
/* calc-dirty-rate / query-dirty-rate (QEMU 8's QMP commands; modes
 * dirty-ring and dirty-bitmap, from kvm/'s dirty log). */
#ifndef STRATA_VMM_CONTROL_DIRTYRATE_H
#define STRATA_VMM_CONTROL_DIRTYRATE_H

#include "vmm/control/qmp.h"

typedef struct Vmm Vmm;
typedef struct DirtyRate DirtyRate;

#define DIRTYRATE_MIN_MS 50 /* calc-time range, as QEMU's */
#define DIRTYRATE_MAX_MS 60000

/* Makes the measurement's state and its timer on the main loop (before
 * the sandbox: it creates a timerfd).  0, or -1 after printing why. */
int vmm_dirtyrate_init(Vmm *v);
/* Frees what vmm_dirtyrate_init made (NULL state: nothing). */
void vmm_dirtyrate_free(Vmm *v);

/* The QMP handlers (opaque: the Vmm) and their argument tables. */
json_t *vmm_qmp_calc_dirty_rate(void *o, QmpClient *c, json_t *a, QmpError *err);
json_t *vmm_qmp_query_dirty_rate(void *o, QmpClient *c, json_t *a, QmpError *err);
extern const QmpArg vmm_calc_dirty_rate_args[];
extern const QmpArg vmm_query_dirty_rate_args[];

#endif /* STRATA_VMM_CONTROL_DIRTYRATE_H */
