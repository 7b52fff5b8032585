/* SPDX-License-Identifier: MIT */
/* block_set_io_throttle and x-net-set-rate-limit (see throttle.h). */
#include "vmm/control/throttle.h"

#include <stdio.h>
#include <string.h>

#include "devices/virtio-blk.h"
#include "devices/virtio-net.h"
#include "vmm/control/commands.h"
#include "vmm/vmm.h"

/* QEMU's upper bound for a throttling value. */
#define THROTTLE_VALUE_MAX 1000000000000000ll

const QmpArg vmm_block_throttle_args[] = {
    { "device", QMP_ARG_STRING, true },
    { "id", QMP_ARG_STRING, true },
    { "bps", QMP_ARG_INT, false },
    { "bps_rd", QMP_ARG_INT, false },
    { "bps_wr", QMP_ARG_INT, false },
    { "iops", QMP_ARG_INT, false },
    { "iops_rd", QMP_ARG_INT, false },
    { "iops_wr", QMP_ARG_INT, false },
    { "bps_max", QMP_ARG_INT, true },
    { "bps_rd_max", QMP_ARG_INT, true },
    { "bps_wr_max", QMP_ARG_INT, true },
    { "iops_max", QMP_ARG_INT, true },
    { "iops_rd_max", QMP_ARG_INT, true },
    { "iops_wr_max", QMP_ARG_INT, true },
    { NULL, 0, false },
};

const QmpArg vmm_net_limit_args[] = {
    { "id", QMP_ARG_STRING, false },    { "bw", QMP_ARG_INT, true },
    { "pps", QMP_ARG_INT, true },       { "bw_burst", QMP_ARG_INT, true },
    { "pps_burst", QMP_ARG_INT, true }, { NULL, 0, false },
};

/* Argument `key` of a (0 if absent) into *out; -1 with err set if it is
 * out of QEMU's range. */
static int get_value(json_t *a, const char *key, uint64_t *out, QmpError *err)
{
    json_int_t v = json_integer_value(json_object_get(a, key));
    if (v < 0 || v > THROTTLE_VALUE_MAX) {
        qmp_error_set(err, "%s must be within [0, %lld]", key, THROTTLE_VALUE_MAX);
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

/* The device named `prefix`N ("disk0"): N, or -1 with err set
 * (DeviceNotFound). */
static int device_index(const char *name, const char *prefix, unsigned count, QmpError *err)
{
    size_t pl = strlen(prefix);
    unsigned n;
    char end;
    if (name && !strncmp(name, prefix, pl) && sscanf(name + pl, "%u%c", &n, &end) == 1 &&
        name[pl] >= '0' && name[pl] <= '9' && n < count)
        return (int)n;
    qmp_error_set(err, "Device '%s' not found", name ? name : "");
    err->cls = "DeviceNotFound";
    return -1;
}

json_t *vmm_qmp_block_set_io_throttle(void *o, QmpClient *c, json_t *a, QmpError *err)
{
    Vmm *v = o;
    const char *dev = json_string_value(json_object_get(a, "device"));
    const char *id = json_string_value(json_object_get(a, "id"));
    if (!dev == !id) {
        qmp_error_set(err, "Need exactly one of 'device' and 'id'");
        return NULL;
    }
    static const char *const separate[] = {
        "bps_rd",     "bps_wr",     "iops_rd",     "iops_wr",
        "bps_rd_max", "bps_wr_max", "iops_rd_max", "iops_wr_max"
    };
    uint64_t x;
    for (size_t i = 0; i < sizeof(separate) / sizeof(separate[0]); i++) {
        if (get_value(a, separate[i], &x, err) < 0)
            return NULL;
        if (x) {
            qmp_error_set(err, "%s: not supported: separate read/write limits", separate[i]);
            return NULL;
        }
    }
    RateLimitConfig cfg = { 0 };
    if (get_value(a, "bps", &cfg.bw, err) < 0 || get_value(a, "iops", &cfg.ops, err) < 0 ||
        get_value(a, "bps_max", &cfg.bw_burst, err) < 0 ||
        get_value(a, "iops_max", &cfg.ops_burst, err) < 0)
        return NULL;
    if ((cfg.bw_burst && !cfg.bw) || (cfg.ops_burst && !cfg.ops)) {
        qmp_error_set(err, "bps_max/iops_max require corresponding bps/iops values");
        return NULL;
    }
    int n = device_index(dev ? dev : id, "disk", v->cfg.ndisks, err);
    VirtioBlk *b = n < 0 ? NULL : vmm_device(v, &virtio_blk_device_ops, (unsigned)n);
    if (n >= 0 && !b) {
        qmp_error_set(err, "Device '%s' not found", dev ? dev : id);
        err->cls = "DeviceNotFound";
    }
    if (!b)
        return NULL;
    if (virtio_blk_set_rate_limit(b, &cfg) < 0) {
        qmp_error_set(err, "%s: no device event loop for a rate limit", dev ? dev : id);
        return NULL;
    }
    return json_object();
}

json_t *vmm_qmp_net_set_rate_limit(void *o, QmpClient *c, json_t *a, QmpError *err)
{
    Vmm *v = o;
    const char *id = json_string_value(json_object_get(a, "id"));
    RateLimitConfig cfg = { 0 };
    if (get_value(a, "bw", &cfg.bw, err) < 0 || get_value(a, "pps", &cfg.ops, err) < 0 ||
        get_value(a, "bw_burst", &cfg.bw_burst, err) < 0 ||
        get_value(a, "pps_burst", &cfg.ops_burst, err) < 0)
        return NULL;
    if ((cfg.bw_burst && !cfg.bw) || (cfg.ops_burst && !cfg.ops)) {
        qmp_error_set(err, "bw_burst/pps_burst require corresponding bw/pps values");
        return NULL;
    }
    int n = device_index(id, "net", v->cfg.nnets, err);
    VirtioNet *d = n < 0 ? NULL : vmm_device(v, &virtio_net_device_ops, (unsigned)n);
    if (n >= 0 && !d) {
        qmp_error_set(err, "Device '%s' not found", id);
        err->cls = "DeviceNotFound";
    }
    if (!d)
        return NULL;
    if (virtio_net_set_rate_limit(d, &cfg) < 0) {
        qmp_error_set(err, "%s: no device event loop for a rate limit", id);
        return NULL;
    }
    return json_object();
}
