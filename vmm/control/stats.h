/* SPDX-License-Identifier: MIT */
/*
 * What strata counts, as QMP answers (docs/stats.md): query-block and
 * query-blockstats (QEMU 7.2's shapes, as far as they apply) and
 * x-query-stats, strata's own command, which the --metrics file also
 * writes, one object per line.  Main thread.
 */
#ifndef STRATA_VMM_CONTROL_STATS_H
#define STRATA_VMM_CONTROL_STATS_H

#include <jansson.h>

typedef struct Vmm Vmm;

/* query-block: one entry per --disk ("disk0", "disk1", ... in command
 * line order), with its image (a new reference). */
json_t *vmm_query_block(Vmm *v);
/* query-blockstats: one {"device", "stats"} per --disk (a new reference). */
json_t *vmm_query_blockstats(Vmm *v);
/* x-query-stats: a timestamp, the run state, every vCPU's exits by reason,
 * the disks', NICs' and virtio queues' counters, migration's dirty-page
 * figures (a new reference). */
json_t *vmm_query_stats(Vmm *v);

#endif /* STRATA_VMM_CONTROL_STATS_H */
