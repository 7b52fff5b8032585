/* SPDX-License-Identifier: MIT */
/* Counter structs as JSON (see stats-json.h). */
#include "vmm/control/stats-json.h"

static void put(json_t *o, const char *key, uint64_t v)
{
    json_object_set_new(o, key, json_integer((json_int_t)v));
}

json_t *stats_blk_json(const VirtioBlkStats *s)
{
    json_t *o = json_object();
    put(o, "rd_bytes", s->rd_bytes);
    put(o, "wr_bytes", s->wr_bytes);
    put(o, "rd_operations", s->rd_operations);
    put(o, "wr_operations", s->wr_operations);
    put(o, "flush_operations", s->flush_operations);
    put(o, "failed_rd_operations", s->failed_rd_operations);
    put(o, "failed_wr_operations", s->failed_wr_operations);
    put(o, "failed_flush_operations", s->failed_flush_operations);
    put(o, "invalid_rd_operations", s->invalid_rd_operations);
    put(o, "invalid_wr_operations", s->invalid_wr_operations);
    put(o, "invalid_flush_operations", 0); /* strata never refuses a flush */
    put(o, "wr_highest_offset", s->wr_highest_offset);
    json_object_set_new(o, "account_invalid", json_true());
    json_object_set_new(o, "account_failed", json_true());
    put(o, "x-get-id-operations", s->get_id_operations);
    put(o, "x-unsupported-operations", s->unsupported_operations);
    put(o, "x-malformed-requests", s->malformed_requests);
    put(o, "x-throttled", s->throttled);
    put(o, "x-throttled-ns", s->throttled_ns);
    return o;
}

json_t *stats_exits_json(const KvmVcpuExitStats *e, uint64_t *total)
{
    json_t *o = json_object();
    uint64_t sum = 0;
    for (unsigned k = 0; k < KVM_EXITS_NR; k++) {
        put(o, kvm_exit_kind_name((KvmExitKind)k), e->exits[k]);
        sum += e->exits[k];
    }
    *total = sum;
    return o;
}

json_t *stats_net_json(const VirtioNetStats *s)
{
    json_t *o = json_object();
    put(o, "rx-packets", s->rx_packets);
    put(o, "rx-bytes", s->rx_bytes);
    put(o, "rx-dropped", s->rx_dropped);
    put(o, "tx-packets", s->tx_packets);
    put(o, "tx-bytes", s->tx_bytes);
    put(o, "tx-dropped", s->tx_dropped);
    put(o, "rx-throttled", s->rx_throttled);
    put(o, "rx-throttled-ns", s->rx_throttled_ns);
    put(o, "tx-throttled", s->tx_throttled);
    put(o, "tx-throttled-ns", s->tx_throttled_ns);
    return o;
}

json_t *stats_queue_json(unsigned q, const VirtioQueueStats *s)
{
    json_t *o = json_object();
    put(o, "queue", q);
    put(o, "kicks", s->kicks);
    put(o, "interrupts", s->interrupts);
    put(o, "suppressed", s->suppressed);
    return o;
}
