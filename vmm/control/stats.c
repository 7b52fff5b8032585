/* SPDX-License-Identifier: MIT */
/* query-block, query-blockstats and x-query-stats (see stats.h). */
#include "vmm/control/stats.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "devices/virtio-blk.h"
#include "devices/virtio-net.h"
#include "vmm/control/commands.h"
#include "vmm/control/stats-json.h"
#include "vmm/runstate.h"
#include "vmm/text.h"
#include "vmm/vmm.h"

static json_t *dev_name(const char *prefix, unsigned i)
{
    char name[32];
    snprintf(name, sizeof(name), "%s%u", prefix, i);
    return json_string(name);
}

/* A path as a JSON string; one that is not UTF-8 escaped (vmm/text.h). */
static json_t *path_json(const char *path)
{
    json_t *s = json_string(path);
    if (s)
        return s;
    size_t len = strlen(path), cap = 4 * len + 4;
    char *buf = malloc(cap);
    if (!buf)
        return json_string("?");
    s = json_string(text_escape(buf, cap, path, len));
    free(buf);
    return s;
}

/* One disk as QEMU's BlockInfo: strata's disks are raw images, fixed
 * (not removable), throttled as a whole (bps, iops; bursts bps_max,
 * iops_max, shown while a limit is set, 0 = one second's worth; no
 * separate read/write limits), cached by the host (writeback, no O_DIRECT)
 * and flushed on the guest's request. */
static json_t *block_info(const VmDisk *cfg, VirtioBlk *b, unsigned i)
{
    RateLimitConfig rl;
    virtio_blk_get_rate_limit(b, &rl);
    json_t *image = json_pack("{s:s,s:I}", "format", "raw", "virtual-size",
                              (json_int_t)b->capacity * 512);
    json_object_set_new(image, "filename", path_json(cfg->path));
    struct stat st;
    if (fstat(b->fd, &st) == 0 && S_ISREG(st.st_mode))
        json_object_set_new(image, "actual-size", json_integer((json_int_t)st.st_blocks * 512));
    json_t *ins = json_pack("{s:b,s:s,s:i,s:b,s:s,s:I,s:i,s:i,s:I,s:i,s:i,s:i,s:{s:b,s:b,s:b},s:o}",
                            "ro", b->readonly, "drv", "raw", "backing_file_depth", 0, "encrypted",
                            0, "detect_zeroes", "off", "bps", (json_int_t)rl.bw, "bps_rd", 0,
                            "bps_wr", 0, "iops", (json_int_t)rl.ops, "iops_rd", 0, "iops_wr", 0,
                            "write_threshold", 0, "cache", "writeback", 1, "direct", 0, "no-flush",
                            0, "image", image);
    json_object_set_new(ins, "file", path_json(cfg->path));
    if (ratelimit_active_cfg(&rl)) {
        json_object_set_new(ins, "bps_max", json_integer((json_int_t)rl.bw_burst));
        json_object_set_new(ins, "iops_max", json_integer((json_int_t)rl.ops_burst));
    }
    return json_pack("{s:o,s:b,s:b,s:s,s:o}", "device", dev_name("disk", i), "locked", 0,
                     "removable", 0, "type", "unknown", "inserted", ins);
}

json_t *vmm_query_block(Vmm *v)
{
    json_t *arr = json_array();
    VirtioBlk *b;
    for (unsigned i = 0; i < v->cfg.ndisks && (b = vmm_device(v, &virtio_blk_device_ops, i)); i++)
        json_array_append_new(arr, block_info(&v->cfg.disks[i], b, i));
    return arr;
}

json_t *vmm_query_blockstats(Vmm *v)
{
    json_t *arr = json_array();
    const VirtioBlk *b;
    for (unsigned i = 0; (b = vmm_device(v, &virtio_blk_device_ops, i)); i++) {
        VirtioBlkStats s;
        virtio_blk_get_stats(b, &s);
        json_array_append_new(arr, json_pack("{s:o,s:o}", "device", dev_name("disk", i), "stats",
                                             stats_blk_json(&s)));
    }
    return arr;
}

static json_t *vcpus_json(Vmm *v)
{
    json_t *arr = json_array();
    unsigned n = v->m.vm ? kvm_vm_nr_vcpus(v->m.vm) : 0;
    for (unsigned i = 0; i < n; i++) {
        KvmVcpu *cpu = kvm_vm_vcpu(v->m.vm, i);
        if (!cpu)
            continue;
        KvmVcpuExitStats e;
        kvm_vcpu_get_exit_stats(cpu, &e);
        uint64_t total;
        json_t *exits = stats_exits_json(&e, &total);
        json_array_append_new(arr,
                              json_pack("{s:i,s:o,s:I,s:I,s:I,s:I}", "cpu-index", (int)i, "exits",
                                        exits, "exits-total", (json_int_t)total, "throttle-sleeps",
                                        (json_int_t)e.throttle_sleeps, "throttled-ns",
                                        (json_int_t)e.throttled_ns, "dirty-ring-pages",
                                        (json_int_t)kvm_vcpu_dirty_pages(cpu)));
    }
    return arr;
}

static json_t *nets_json(Vmm *v)
{
    json_t *arr = json_array();
    VirtioNet *d;
    for (unsigned i = 0; (d = vmm_device(v, &virtio_net_device_ops, i)); i++) {
        VirtioNetStats s;
        virtio_net_get_stats(d, &s);
        json_t *o = stats_net_json(&s);
        RateLimitConfig rl;
        virtio_net_get_rate_limit(d, &rl);
        json_object_set_new(o, "rate-limit",
                            json_pack("{s:I,s:I,s:I,s:I}", "bw", (json_int_t)rl.bw, "pps",
                                      (json_int_t)rl.ops, "bw_burst", (json_int_t)rl.bw_burst,
                                      "pps_burst", (json_int_t)rl.ops_burst));
        json_object_set_new(o, "device", dev_name("net", i));
        if (i < v->cfg.nnets)
            json_object_set_new(o, "tap", json_string(v->cfg.nets[i].tap));
        json_array_append_new(arr, o);
    }
    return arr;
}

/* Every virtio transport's queue counters (`info virtio`'s). */
static json_t *virtio_json(Vmm *v)
{
    json_t *arr = json_array();
    for (unsigned i = 0; i < v->m.nvirtio; i++) {
        VirtioMmio *t = v->m.virtio[i].t;
        if (!t)
            continue;
        json_t *qs = json_array();
        for (unsigned q = 0; q < t->num_queues; q++) {
            VirtioQueueStats st = virtio_mmio_queue_stats(t, q);
            json_array_append_new(qs, stats_queue_json(q, &st));
        }
        json_array_append_new(arr, json_pack("{s:s,s:o}", "device", t->label, "queues", qs));
    }
    return arr;
}

/* The dirty-page figures of the last (or current) migration, as
 * query-migrate reports them; {"status": "none"} without one. */
static json_t *migration_json(Vmm *v)
{
    QmpError err = { 0 };
    json_t *q = vmm_qmp_call(v, "query-migrate", &err);
    json_t *status = q ? json_object_get(q, "status") : NULL;
    json_t *ram = q ? json_object_get(q, "ram") : NULL;
    json_t *r = json_object();
    json_object_set_new(r, "status", status ? json_incref(status) : json_string("none"));
    static const char *const keys[] = {
        "dirty-sync-count", "dirty-pages-rate", "remaining", "transferred", "total", "page-size"
    };
    for (size_t k = 0; ram && k < sizeof(keys) / sizeof(keys[0]); k++) {
        json_t *x = json_object_get(ram, keys[k]);
        if (x)
            json_object_set(r, keys[k], x);
    }
    json_decref(q);
    return r;
}

/* kvm/'s dirty log: which one, and its counters since the VM began. */
static json_t *dirty_log_json(Vmm *v)
{
    if (!v->m.vm)
        return json_object();
    KvmVmStats st;
    kvm_vm_get_stats(v->m.vm, &st);
    unsigned ring = kvm_vm_dirty_ring_size(v->m.vm);
    return json_pack("{s:s,s:i,s:I,s:I,s:I,s:I,s:I,s:I}", "mode", ring ? "ring" : "bitmap",
                     "ring-size", (int)ring, "syncs", (json_int_t)st.dirty_syncs, "sync-ns",
                     (json_int_t)st.dirty_sync_ns, "pages", (json_int_t)st.dirty_pages, "ring-full",
                     (json_int_t)st.dirty_ring_full, "ring-full-ns",
                     (json_int_t)st.dirty_ring_full_ns, "ring-resets",
                     (json_int_t)st.dirty_ring_resets);
}

json_t *vmm_query_stats(Vmm *v)
{
    struct timespec wall, mono;
    clock_gettime(CLOCK_REALTIME, &wall);
    clock_gettime(CLOCK_MONOTONIC, &mono);
    uint64_t now_ns = (uint64_t)mono.tv_sec * 1000000000ull + (uint64_t)mono.tv_nsec;
    uint64_t up_ms = now_ns > v->start_ns ? (now_ns - v->start_ns) / 1000000 : 0;
    json_t *r = json_pack("{s:{s:I,s:I},s:I,s:s}", "timestamp", "seconds", (json_int_t)wall.tv_sec,
                          "microseconds", (json_int_t)(wall.tv_nsec / 1000), "uptime-ms",
                          (json_int_t)up_ms, "status", vmm_state_name(v));
    json_object_set_new(r, "vcpus", vcpus_json(v));
    json_object_set_new(r, "block", vmm_query_blockstats(v));
    json_object_set_new(r, "net", nets_json(v));
    json_object_set_new(r, "virtio", virtio_json(v));
    json_object_set_new(r, "migration", migration_json(v));
    json_object_set_new(r, "dirty-log", dirty_log_json(v));
    return r;
}
