/* SPDX-License-Identifier: MIT */
/* QMP commands of strata (see commands.h); the run-state actions they
 * share with HMP are in vmm/runstate.c. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "devices/virtio-balloon.h"
#include "vmm/control/commands.h"
#include "vmm/control/dirtyrate.h"
#include "vmm/control/hmp.h"
#include "vmm/control/stats.h"
#include "vmm/control/throttle.h"
#include "vmm/migration/migration.h"
#include "vmm/runstate.h"
#include "vmm/vmm.h"

/* ---- handlers ------------------------------------------------------------ */

static json_t *q_status(void *o, QmpClient *c, json_t *a, QmpError *err)
{
    Vmm *v = o;
    const char *name = vmm_state_name(v);
    return json_pack("{s:s,s:b,s:b}", "status", name, "singlestep", 0, "running",
                     !strcmp(name, "running"));
}

static json_t *q_stop(void *o, QmpClient *c, json_t *a, QmpError *err)
{
    return vmm_stop(o, err) < 0 ? NULL : json_object();
}

static json_t *q_cont(void *o, QmpClient *c, json_t *a, QmpError *err)
{
    return vmm_cont(o, err) < 0 ? NULL : json_object();
}

static json_t *q_reset(void *o, QmpClient *c, json_t *a, QmpError *err)
{
    return vmm_system_reset(o, err) < 0 ? NULL : json_object();
}

static json_t *q_powerdown(void *o, QmpClient *c, json_t *a, QmpError *err)
{
    return vmm_system_powerdown(o, err) < 0 ? NULL : json_object();
}

static json_t *q_quit(void *o, QmpClient *c, json_t *a, QmpError *err)
{
    vmm_request_quit(o);
    return json_object();
}

static json_t *q_version(void *o, QmpClient *c, json_t *a, QmpError *err)
{
    return qmp_version_json();
}

static json_t *q_kvm(void *o, QmpClient *c, json_t *a, QmpError *err)
{
    return json_pack("{s:b,s:b}", "enabled", 1, "present", 1);
}

/* QEMU answers {} when the VM has no name. */
static json_t *q_name(void *o, QmpClient *c, json_t *a, QmpError *err)
{
    Vmm *v = o;
    return v->cfg.name ? json_pack("{s:s}", "name", v->cfg.name) : json_object();
}

static json_t *q_uuid(void *o, QmpClient *c, json_t *a, QmpError *err)
{
    Vmm *v = o;
    return json_pack("{s:s}", "UUID", v->cfg.uuid);
}

static json_t *q_target(void *o, QmpClient *c, json_t *a, QmpError *err)
{
    return json_pack("{s:s}", "arch", "x86_64");
}

/* strata has one machine, the board of vmm/machine.c. */
static json_t *q_machines(void *o, QmpClient *c, json_t *a, QmpError *err)
{
    /* the vCPUs are the host's model (KVM's supported CPUID); RAM is one
     * region, microvm.ram (info mtree) */
    return json_pack("[{s:s,s:b,s:i,s:b,s:b,s:b,s:b,s:s,s:s}]", "name", MACHINE_NAME, "is-default",
                     1, "cpu-max", MACHINE_MAX_CPUS, "hotpluggable-cpus", 0, "numa-mem-supported",
                     0, "deprecated", 0, "acpi", 1, "default-cpu-type", "host-x86_64-cpu",
                     "default-ram-id", "microvm.ram");
}

static json_t *q_cpus_fast(void *o, QmpClient *c, json_t *a, QmpError *err)
{
    Vmm *v = o;
    json_t *arr = json_array();
    for (unsigned i = 0; i < kvm_vm_nr_vcpus(v->m.vm); i++) {
        char path[48];
        snprintf(path, sizeof(path), "/machine/unattached/device[%u]", i);
        json_array_append_new(arr,
                              json_pack("{s:i,s:s,s:i,s:{s:i,s:i,s:i,s:i},s:s}", "cpu-index",
                                        (int)i, "qom-path", path, "thread-id",
                                        (int)vmm_vcpu_tid(v, i), "props", "core-id", 0, "thread-id",
                                        0, "socket-id", (int)i, "node-id", 0, "target", "x86_64"));
    }
    return arr;
}

static void hex_set(json_t *o, const char *key, uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "0x%llx", (unsigned long long)v);
    json_object_set_new(o, key, json_string(buf));
}

static json_t *q_mtree(void *o, QmpClient *c, json_t *a, QmpError *err)
{
    Vmm *v = o;
    char *text = mtree_info_json(v->m.ctx);
    json_error_t je;
    json_t *tree = text ? json_loads(text, 0, &je) : NULL;
    free(text);
    if (!json_is_object(tree)) {
        json_decref(tree);
        qmp_error_set(err, "query-mtree: could not render the memory tree");
        return NULL;
    }
    KvmSlotInfo slots[64];
    size_t n = kvm_vm_get_slots(v->m.vm, slots, 64);
    json_t *arr = json_array();
    for (size_t i = 0; i < n && i < 64; i++) {
        json_t *s = json_object();
        json_object_set_new(s, "slot", json_integer(slots[i].slot));
        hex_set(s, "gpa", slots[i].gpa);
        hex_set(s, "size", slots[i].size);
        json_object_set_new(s, "dirty-log", json_boolean(slots[i].flags & KVM_MEM_LOG_DIRTY_PAGES));
        json_object_set_new(s, "readonly", json_boolean(slots[i].flags & KVM_MEM_READONLY));
        json_object_set_new(s, "region", json_string(slots[i].name));
        json_array_append_new(arr, s);
    }
    json_object_set_new(tree, "kvm-slots", arr);
    json_object_set_new(tree, "kvm-slots-total", json_integer((json_int_t)n));
    return tree;
}

static const char *const client_names[DIRTY_MEMORY_NUM] = {
    [DIRTY_MEMORY_VGA] = "vga",
    [DIRTY_MEMORY_CODE] = "code",
    [DIRTY_MEMORY_MIGRATION] = "migration",
};

static int client_by_name(const char *name)
{
    for (int i = 0; i < DIRTY_MEMORY_NUM; i++)
        if (client_names[i] && !strcmp(client_names[i], name))
            return i;
    return -1;
}

static json_t *q_dirty_log(void *o, QmpClient *c, json_t *a, QmpError *err)
{
    Vmm *v = o;
    bool reset = json_is_true(json_object_get(a, "reset"));
    MemoryRegion *ram = &v->m.ram;
    if (reset && mig_dirty_log_held(v->mig)) {
        /* clearing its marks would lose pages of a migration or of the
         * next incremental snapshot */
        qmp_error_set(err, "query-dirty-log: reset refused: a migration, or the last "
                           "incremental snapshot, holds the migration client's log");
        return NULL;
    }
    json_t *arr = json_array();
    json_t *r = json_object();
    uint8_t mask = memory_region_get_dirty_log_mask(ram);
    uint64_t size = memory_region_size(ram);
    uint64_t pages = size / MEMORY_PAGE_SIZE;
    json_object_set_new(r, "name", json_string(memory_region_name(ram)));
    json_object_set_new(r, "size", json_integer((json_int_t)size));
    json_object_set_new(r, "pages", json_integer((json_int_t)pages));
    json_t *clients = json_array(), *dirty = json_object();
    /* reset: the marks are taken, counted and cleared at once (a page the
     * guest dirties meanwhile is either counted or left for the next) */
    uint64_t *taken = reset ? calloc((pages + 63) / 64 ? (pages + 63) / 64 : 1, 8) : NULL;
    if (reset && !taken) {
        json_decref(arr);
        json_decref(r);
        json_decref(clients);
        json_decref(dirty);
        qmp_error_set(err, "query-dirty-log: out of memory");
        return NULL;
    }
    if (mask)
        memory_region_sync_dirty_bitmap(ram);
    for (int k = 0; k < DIRTY_MEMORY_NUM; k++) {
        if (!(mask & (1u << k)) || !client_names[k])
            continue;
        json_array_append_new(clients, json_string(client_names[k]));
        uint64_t n = 0;
        if (reset) {
            memset(taken, 0, (pages + 63) / 64 * 8);
            n = memory_region_take_dirty(ram, 0, pages, (unsigned)k, taken);
        } else {
            for (uint64_t p = 0; p < pages; p++)
                n += memory_region_get_dirty(ram, p * MEMORY_PAGE_SIZE, MEMORY_PAGE_SIZE,
                                             (unsigned)k);
        }
        json_object_set_new(dirty, client_names[k], json_integer((json_int_t)n));
    }
    free(taken);
    json_object_set_new(r, "clients", clients);
    json_object_set_new(r, "dirty-pages", dirty);
    json_array_append_new(arr, r);
    return arr;
}

static json_t *q_set_dirty_log(void *o, QmpClient *c, json_t *a, QmpError *err)
{
    Vmm *v = o;
    json_t *jc = json_object_get(a, "client");
    const char *name = jc ? json_string_value(jc) : "migration";
    int client = client_by_name(name);
    if (client < 0) {
        qmp_error_set(err,
                      "Parameter 'client' has an invalid value '%s' "
                      "(expected vga, code or migration)",
                      name);
        return NULL;
    }
    bool on = json_is_true(json_object_get(a, "enable"));
    if (vmm_check_guest(v, err) < 0)
        return NULL;
    if (mig_active(v->mig)) {
        /* the migration thread reads the slots' dirty logs meanwhile */
        qmp_error_set(err, "set-dirty-log: a migration is in progress");
        return NULL;
    }
    if (client == DIRTY_MEMORY_MIGRATION && mig_dirty_log_held(v->mig)) {
        /* switched off (or on, then off) here, the next incremental
         * snapshot would miss the pages written meanwhile */
        qmp_error_set(err, "set-dirty-log: the last incremental snapshot holds the migration "
                           "client's log (a full save elsewhere, or x-incremental-snapshot "
                           "off and a save, releases it)");
        return NULL;
    }
    memory_region_transaction_begin(v->m.ctx);
    int r = memory_region_set_log(&v->m.ram, on, (unsigned)client);
    memory_region_transaction_commit(v->m.ctx);
    if (r < 0) {
        qmp_error_set(err, "set-dirty-log: %s", memory_context_last_error(v->m.ctx));
        return NULL;
    }
    return json_object();
}

static json_t *q_hmp(void *o, QmpClient *c, json_t *a, QmpError *err)
{
    Vmm *v = o;
    json_t *idx = json_object_get(a, "cpu-index");
    if (idx && (json_integer_value(idx) < 0 ||
                json_integer_value(idx) >= (json_int_t)kvm_vm_nr_vcpus(v->m.vm))) {
        qmp_error_set(err, "Parameter 'cpu-index' expects a CPU index below %u",
                      kvm_vm_nr_vcpus(v->m.vm));
        return NULL;
    }
    char *out = hmp_execute(v, json_string_value(json_object_get(a, "command-line")), err);
    if (!out)
        return NULL;
    json_t *s = json_string(out);
    free(out);
    if (!s)
        qmp_error_set(err, "human-monitor-command: output is not valid UTF-8");
    return s;
}

/* ---- statistics (vmm/control/stats.c) ------------------------------------- */

static json_t *q_block(void *o, QmpClient *c, json_t *a, QmpError *err)
{
    return vmm_query_block(o);
}

static json_t *q_blockstats(void *o, QmpClient *c, json_t *a, QmpError *err)
{
    return vmm_query_blockstats(o);
}

static json_t *q_stats(void *o, QmpClient *c, json_t *a, QmpError *err)
{
    return vmm_query_stats(o);
}

void *vmm_device(Vmm *v, const DeviceOps *ops, unsigned n)
{
    for (unsigned i = 0; i < devlist_count(&v->m.devices); i++) {
        DevRecord *r = devlist_get(&v->m.devices, i);
        if (r->ops == ops && n-- == 0)
            return r->dev;
    }
    return NULL;
}

json_t *vmm_qmp_call(Vmm *v, const char *name, QmpError *err)
{
    for (size_t i = 0; v->cmds && i < v->ncmds; i++) {
        const QmpCommand *c = &v->cmds[i];
        if (!strcmp(c->name, name))
            return c->fn(c->opaque ? c->opaque : v, NULL, NULL, err);
    }
    qmp_error_set(err, "The command %s has not been found", name);
    err->cls = "CommandNotFound";
    return NULL;
}

/* ---- the balloon ---------------------------------------------------------- */

static VirtioBalloon *find_balloon(Vmm *v)
{
    return vmm_device(v, &virtio_balloon_device_ops, 0);
}

static VirtioBalloon *have_balloon(Vmm *v, QmpError *err)
{
    VirtioBalloon *b = find_balloon(v);
    if (!b) {
        qmp_error_set(err, "No balloon device has been activated");
        err->cls = "DeviceNotActive";
    }
    return b;
}

/* QEMU's "actual": guest RAM less what the guest says it gave up. */
static uint64_t actual_bytes(const Vmm *v, const VirtioBalloonInfo *i)
{
    uint64_t held = (uint64_t)i->actual << VIRTIO_BALLOON_PFN_SHIFT;
    return held < v->cfg.memory ? v->cfg.memory - held : 0;
}

static json_t *q_balloon(void *o, QmpClient *c, json_t *a, QmpError *err)
{
    Vmm *v = o;
    VirtioBalloon *b = have_balloon(v, err);
    if (!b || vmm_check_guest(v, err) < 0)
        return NULL;
    json_int_t value = json_integer_value(json_object_get(a, "value"));
    if (value <= 0) {
        qmp_error_set(err, "Parameter 'target' expects a size");
        return NULL;
    }
    uint64_t target = (uint64_t)value < v->cfg.memory ? (uint64_t)value : v->cfg.memory;
    virtio_balloon_set_target(b, (uint32_t)((v->cfg.memory - target) >> VIRTIO_BALLOON_PFN_SHIFT));
    return json_object();
}

json_t *vmm_query_balloon(Vmm *v, QmpError *err)
{
    VirtioBalloon *b = have_balloon(v, err);
    if (!b)
        return NULL;
    VirtioBalloonInfo i;
    virtio_balloon_info(b, &i);
    json_t *r = json_pack("{s:I}", "actual", (json_int_t)actual_bytes(v, &i));
    if (i.stats_valid) { /* as QEMU's guest-stats property: -1 for what was not reported */
        json_t *st = json_object();
        for (unsigned n = 0; n < VIRTIO_BALLOON_S_NR; n++)
            json_object_set_new(st, virtio_balloon_stat_name(n),
                                json_integer(i.stats_valid & (1u << n) ? (json_int_t)i.stats[n]
                                                                       : -1));
        json_object_set_new(r, "guest-stats",
                            json_pack("{s:o,s:I}", "stats", st, "last-update",
                                      (json_int_t)i.stats_updated));
    }
    return r;
}

static json_t *q_query_balloon(void *o, QmpClient *c, json_t *a, QmpError *err)
{
    return vmm_query_balloon(o, err);
}

/* The guest changed `actual`: BALLOON_CHANGE, as QEMU sends it. */
static void on_balloon_change(EvSource *src, uint32_t events)
{
    Vmm *v = (Vmm *)((char *)src - offsetof(Vmm, balloon_src));
    VirtioBalloon *b = find_balloon(v);
    uint64_t n;
    if (!b || read(virtio_balloon_change_fd(b), &n, sizeof(n)) < 0)
        return;
    VirtioBalloonInfo i;
    virtio_balloon_info(b, &i);
    uint64_t actual = actual_bytes(v, &i);
    if (actual == v->balloon_actual_sent)
        return;
    v->balloon_actual_sent = actual;
    qmp_server_event(v->qmp, "BALLOON_CHANGE", json_pack("{s:I}", "actual", (json_int_t)actual));
}

int vmm_balloon_watch(Vmm *v)
{
    VirtioBalloon *b = find_balloon(v);
    if (!b || !v->qmp)
        return 0;
    v->balloon_actual_sent = v->cfg.memory;
    v->balloon_src.handler = on_balloon_change;
    int r = ev_add(v->epfd, virtio_balloon_change_fd(b), EPOLLIN, &v->balloon_src);
    if (r < 0)
        fprintf(stderr, "strata: --balloon: event loop: %s\n", strerror(-r));
    return r < 0 ? -1 : 0;
}

static const QmpArg hmp_args[] = {
    { "command-line", QMP_ARG_STRING, false },
    { "cpu-index", QMP_ARG_INT, true },
    { NULL, 0, false },
};
static const QmpArg balloon_args[] = { { "value", QMP_ARG_INT, false }, { NULL, 0, false } };
static const QmpArg machines_args[] = { { "compat-props", QMP_ARG_BOOL, true },
                                        { NULL, 0, false } };
/* QEMU's query-blockstats takes query-nodes; strata has no node graph
 * apart from the devices, so it changes nothing. */
static const QmpArg blockstats_args[] = { { "query-nodes", QMP_ARG_BOOL, true },
                                          { NULL, 0, false } };
static const QmpArg dirty_args[] = { { "reset", QMP_ARG_BOOL, true }, { NULL, 0, false } };
static const QmpArg set_dirty_args[] = {
    { "enable", QMP_ARG_BOOL, false },
    { "client", QMP_ARG_STRING, true },
    { NULL, 0, false },
};

const QmpCommand vmm_qmp_commands[] = {
    { "query-status", q_status, NULL, NULL },
    { "stop", q_stop, NULL, NULL },
    { "cont", q_cont, NULL, NULL },
    { "system_reset", q_reset, NULL, NULL },
    { "system_powerdown", q_powerdown, NULL, NULL },
    { "quit", q_quit, NULL, NULL },
    { "query-version", q_version, NULL, NULL },
    { "query-kvm", q_kvm, NULL, NULL },
    { "query-name", q_name, NULL, NULL },
    { "query-uuid", q_uuid, NULL, NULL },
    { "query-target", q_target, NULL, NULL },
    { "query-machines", q_machines, machines_args, NULL },
    { "query-cpus-fast", q_cpus_fast, NULL, NULL },
    { "query-mtree", q_mtree, NULL, NULL },
    { "query-dirty-log", q_dirty_log, dirty_args, NULL },
    { "set-dirty-log", q_set_dirty_log, set_dirty_args, NULL },
    { "human-monitor-command", q_hmp, hmp_args, NULL },
    { "balloon", q_balloon, balloon_args, NULL },
    { "query-balloon", q_query_balloon, NULL, NULL },
    { "query-block", q_block, NULL, NULL },
    { "query-blockstats", q_blockstats, blockstats_args, NULL },
    { "x-query-stats", q_stats, NULL, NULL },
    { "block_set_io_throttle", vmm_qmp_block_set_io_throttle, vmm_block_throttle_args, NULL },
    { "x-net-set-rate-limit", vmm_qmp_net_set_rate_limit, vmm_net_limit_args, NULL },
    { "calc-dirty-rate", vmm_qmp_calc_dirty_rate, vmm_calc_dirty_rate_args, NULL },
    { "query-dirty-rate", vmm_qmp_query_dirty_rate, vmm_query_dirty_rate_args, NULL },
};
const size_t vmm_qmp_ncommands = sizeof(vmm_qmp_commands) / sizeof(vmm_qmp_commands[0]);
