/* SPDX-License-Identifier: MIT */
/*
 * The JSON of strata's statistics (docs/stats.md), made from plain counter
 * structs: query-blockstats' "stats" object, the exits of a vCPU, a
 * virtio-net device's frames, one virtio queue's notifications.  No VM
 * needed, so unit tests check the shapes directly.
 */
#ifndef STRATA_VMM_CONTROL_STATS_JSON_H
#define STRATA_VMM_CONTROL_STATS_JSON_H

#include <jansson.h>
#include <stdint.h>

#include "devices/virtio-blk.h"
#include "devices/virtio-net.h"
#include "kvm/kvm.h"

/* query-blockstats' "stats" (QEMU's BlockDeviceStats names for what
 * strata counts, "x-" names for its own; a new reference). */
json_t *stats_blk_json(const VirtioBlkStats *s);
/* {"io": N, "mmio": N, ...}: every KvmExitKind by name, and *total set to
 * their sum (a new reference). */
json_t *stats_exits_json(const KvmVcpuExitStats *e, uint64_t *total);
/* {"rx-packets", "rx-bytes", "rx-dropped", "tx-packets", "tx-bytes",
 * "tx-dropped"} (a new reference). */
json_t *stats_net_json(const VirtioNetStats *s);
/* {"queue": q, "kicks", "interrupts", "suppressed"} (a new reference). */
json_t *stats_queue_json(unsigned q, const VirtioQueueStats *s);

#endif /* STRATA_VMM_CONTROL_STATS_JSON_H */
