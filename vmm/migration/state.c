/* SPDX-License-Identifier: MIT */
/*
 * What a migration carries besides RAM pages: the machine's RAM blocks and
 * devices in stream order, the CONFIG description a destination checks
 * itself against, and the VM / vCPU state records.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kvm/state.h"
#include "memory/state-stream.h"
#include "vmm/machine.h"
#include "vmm/migration/cpu.h"
#include "vmm/migration/internal.h"
#include "vmm/text.h"

unsigned mig_blocks(Machine *m, MigBlock *out, unsigned max)
{
    if (!memory_region_get_ram_ptr(&m->ram) || max < 1)
        return 0;
    out[0].mr = &m->ram;
    out[0].name = memory_region_name(&m->ram);
    out[0].host = memory_region_get_ram_ptr(&m->ram);
    out[0].size = memory_region_size(&m->ram);
    out[0].pages = out[0].size / MIG_PAGE_SIZE;
    return 1;
}

/* ---- devices --------------------------------------------------------------- */

/* Device idx of the board's list (vmm/devlist.h), through its DeviceOps. */
static int save_listed(Machine *m, unsigned idx, uint8_t **b, size_t *l)
{
    DevRecord *d = devlist_get(&m->devices, idx);
    return d->ops->save(d->dev, b, l);
}

static int load_listed(Machine *m, unsigned idx, const uint8_t *b, size_t l, char *e, size_t el)
{
    DevRecord *d = devlist_get(&m->devices, idx);
    return d->ops->load(d->dev, b, l, e, el);
}

/* The device list's order and names are the stream's (docs/migration.md). */
unsigned mig_devices(Machine *m, MigDevice *out, unsigned max)
{
    unsigned n = 0;
    for (unsigned i = 0; i < devlist_count(&m->devices) && n < max; i++) {
        MigDevice *d = &out[n++];
        snprintf(d->name, sizeof(d->name), "%s", devlist_get(&m->devices, i)->name);
        d->save = save_listed;
        d->load = load_listed;
        d->idx = i;
    }
    return n;
}

/* ---- CONFIG ---------------------------------------------------------------- */

static char *config_json(Machine *m, bool disks, bool host);

char *mig_config_json(Machine *m)
{
    return config_json(m, false, true);
}

char *mig_config_json_disks(Machine *m)
{
    return config_json(m, true, true);
}

/* --disk i's size in bytes (-1: cannot stat it). */
static json_int_t disk_size(const Machine *m, unsigned i)
{
    struct stat st;
    return stat(m->cfg->disks[i].path, &st) == 0 ? (json_int_t)st.st_size : -1;
}

/* "host-cpu": {"vendor": "GenuineIntel", "features": [8 words]} (cpu.h). */
static json_t *host_cpu_json(void)
{
    MigHostCpu h;
    mig_host_cpu_read(&h);
    json_t *f = json_array();
    for (unsigned w = 0; w < MIG_HOST_CPU_WORDS; w++)
        json_array_append_new(f, json_integer(h.words[w]));
    return json_pack("{s:s,s:o}", "vendor", h.vendor, "features", f);
}

static char *config_json(Machine *m, bool disks, bool host)
{
    MigBlock b[4];
    MigDevice d[MIG_MAX_DEVICES];
    unsigned nb = mig_blocks(m, b, 4), nd = mig_devices(m, d, MIG_MAX_DEVICES);
    json_t *ram = json_array(), *devs = json_array();
    for (unsigned i = 0; i < nb; i++)
        json_array_append_new(ram, json_pack("{s:s,s:I}", "name", b[i].name, "size",
                                             (json_int_t)b[i].size));
    for (unsigned i = 0; i < nd; i++)
        json_array_append_new(devs, json_string(d[i].name));
    json_t *o = json_pack("{s:s,s:I,s:i,s:b,s:o,s:o}", "machine", MACHINE_NAME, "memory",
                          (json_int_t)m->cfg->memory, "cpus", (int)m->ncpus, "irqchip",
                          kvm_vm_has_irqchip(m->vm), "ram", ram, "devices", devs);
    if (o && host)
        json_object_set_new(o, "host-cpu", host_cpu_json());
    if (o && disks) {
        json_t *dl = json_array();
        for (unsigned i = 0; i < m->cfg->ndisks; i++)
            json_array_append_new(dl, json_pack("{s:s,s:I}", "path", m->cfg->disks[i].path, "size",
                                                disk_size(m, i)));
        json_object_set_new(o, "disks", dl);
    }
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

/* "256 MiB" style for messages. */
static void fmt_size(char *buf, size_t n, uint64_t v)
{
    if (v && !(v & ((1ull << 30) - 1)))
        snprintf(buf, n, "%llu GiB", (unsigned long long)(v >> 30));
    else if (v && !(v & ((1ull << 20) - 1)))
        snprintf(buf, n, "%llu MiB", (unsigned long long)(v >> 20));
    else
        snprintf(buf, n, "%llu bytes", (unsigned long long)v);
}

/* The source's "host-cpu" against this host's: the feature words it had
 * and this one lacks into lost[] (all 0 without "host-cpu": a source that
 * sends none sends no CPUID either).  -1 with err if it is malformed or
 * names another vendor. */
static int host_cpu_check(json_t *src, uint32_t lost[MIG_HOST_CPU_WORDS], char *err, size_t errlen)
{
    memset(lost, 0, MIG_HOST_CPU_WORDS * sizeof(lost[0]));
    json_t *hc = json_object_get(src, "host-cpu");
    if (!hc)
        return 0;
    const char *vendor = json_string_value(json_object_get(hc, "vendor"));
    json_t *f = json_object_get(hc, "features");
    if (!vendor || !json_is_array(f) || json_array_size(f) != MIG_HOST_CPU_WORDS) {
        snprintf(err, errlen, "the CONFIG record's host-cpu is malformed");
        return -1;
    }
    MigHostCpu mine;
    mig_host_cpu_read(&mine);
    if (strcmp(vendor, mine.vendor)) {
        char v[64];
        snprintf(err, errlen, "the source's host CPU is %s, this host's is %s",
                 text_escape(v, sizeof(v), vendor, strlen(vendor)), mine.vendor);
        return -1;
    }
    for (unsigned w = 0; w < MIG_HOST_CPU_WORDS; w++) {
        json_t *e = json_array_get(f, w);
        if (!json_is_integer(e) || json_integer_value(e) < 0 ||
            json_integer_value(e) > 0xffffffffLL) {
            snprintf(err, errlen, "the CONFIG record's host-cpu feature word %u is malformed", w);
            return -1;
        }
        lost[w] = (uint32_t)json_integer_value(e) & ~mine.words[w];
    }
    return 0;
}

int mig_config_check(Machine *m, const char *text, size_t len, uint32_t lost[MIG_HOST_CPU_WORDS],
                     char *err, size_t errlen)
{
    json_error_t je;
    json_t *src = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    char *mine_s = config_json(m, false, false);
    json_t *mine = mine_s ? json_loads(mine_s, 0, &je) : NULL;
    free(mine_s);
    int ret = -1;
    if (!json_is_object(src)) {
        snprintf(err, errlen, "the CONFIG record is not a JSON object");
        goto out;
    }
    if (!mine) {
        snprintf(err, errlen, "out of memory describing this machine");
        goto out;
    }
    const char *mach = json_string_value(json_object_get(src, "machine"));
    if (!mach || strcmp(mach, MACHINE_NAME)) {
        snprintf(err, errlen, "the source is a '%s' machine, this is " MACHINE_NAME,
                 mach ? mach : "?");
        goto out;
    }
    json_t *jm = json_object_get(src, "memory");
    uint64_t smem = json_is_integer(jm) ? (uint64_t)json_integer_value(jm) : 0;
    if (smem != m->cfg->memory) {
        char a[32], b[32];
        fmt_size(a, sizeof(a), smem);
        fmt_size(b, sizeof(b), m->cfg->memory);
        snprintf(err, errlen, "the source has --memory %s, this strata has %s", a, b);
        goto out;
    }
    json_t *jc = json_object_get(src, "cpus");
    if (!json_is_integer(jc) || json_integer_value(jc) != (json_int_t)m->ncpus) {
        snprintf(err, errlen, "the source has --cpus %lld, this strata has %u",
                 json_is_integer(jc) ? (long long)json_integer_value(jc) : -1LL, m->ncpus);
        goto out;
    }
    if (!json_equal(json_object_get(src, "irqchip"), json_object_get(mine, "irqchip"))) {
        snprintf(err, errlen, "the source and this strata differ in the in-kernel irqchip");
        goto out;
    }
    if (!json_equal(json_object_get(src, "ram"), json_object_get(mine, "ram"))) {
        char *a = json_dumps(json_object_get(src, "ram"), JSON_COMPACT);
        char *b = json_dumps(json_object_get(mine, "ram"), JSON_COMPACT);
        snprintf(err, errlen, "RAM blocks differ: source %s, here %s", a ? a : "?", b ? b : "?");
        free(a);
        free(b);
        goto out;
    }
    json_t *sd = json_object_get(src, "devices"), *md = json_object_get(mine, "devices");
    if (!json_is_array(sd)) {
        snprintf(err, errlen, "the CONFIG record has no device list");
        goto out;
    }
    size_t ns = json_array_size(sd), nm = json_array_size(md);
    for (size_t i = 0; i < ns || i < nm; i++) {
        const char *a = i < ns ? json_string_value(json_array_get(sd, i)) : NULL;
        const char *b = i < nm ? json_string_value(json_array_get(md, i)) : NULL;
        if (!a || !b || strcmp(a, b)) {
            snprintf(err, errlen,
                     "device %zu differs: the source has %s, this strata has %s "
                     "(same --disk/--net/--rng/--balloon/--serial/--test-device options needed)",
                     i, a ? a : "none", b ? b : "none");
            goto out;
        }
    }
    if (host_cpu_check(src, lost, err, errlen) < 0)
        goto out;
    /* a snapshot's CONFIG names its disks: the restore must have the same */
    json_t *sdisks = json_object_get(src, "disks");
    if (sdisks) {
        size_t n = json_array_size(sdisks);
        for (size_t i = 0; i < n || i < m->cfg->ndisks; i++) {
            json_t *e = json_array_get(sdisks, i);
            const char *p = json_string_value(json_object_get(e, "path"));
            json_int_t size = json_integer_value(json_object_get(e, "size"));
            const char *q = i < m->cfg->ndisks ? m->cfg->disks[i].path : NULL;
            if (!p || !q || strcmp(p, q) || size != disk_size(m, (unsigned)i)) {
                char a[300], b[300];
                text_escape(a, sizeof(a), p ? p : "none", strlen(p ? p : "none"));
                snprintf(err, errlen,
                         "disk %zu differs: the snapshot has %s (%lld bytes), this strata has "
                         "%s (%lld bytes)",
                         i, a, (long long)size,
                         q ? text_escape(b, sizeof(b), q, strlen(q)) : "none",
                         q ? (long long)disk_size(m, (unsigned)i) : -1LL);
                goto out;
            }
        }
    }
    ret = 0;
out:
    json_decref(src);
    json_decref(mine);
    return ret;
}

/* ---- VM and vCPU state ----------------------------------------------------- */

int mig_send_cpu_state(Machine *m, MigChannel *ch, bool cpuid, char *err, size_t errlen)
{
    StateWriter w;
    uint8_t *buf;
    size_t len;
    KvmVmState *vs = calloc(1, sizeof(*vs));
    KvmVcpuState *cs = calloc(1, sizeof(*cs));
    int ret = -1;
    if (!vs || !cs) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (kvm_vm_get_state(m->vm, vs) < 0) {
        snprintf(err, errlen, "reading the VM state: %s", kvm_vm_last_error(m->vm));
        goto out;
    }
    state_writer_init(&w);
    mig_put_vm_state(&w, vs);
    if (state_writer_finish(&w, &buf, &len) < 0) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    int r = mig_send_record(ch, MIG_REC_VMSTATE, 0, buf, (uint32_t)len);
    free(buf);
    if (r < 0) {
        snprintf(err, errlen, "%s", ch->err);
        goto out;
    }
    for (unsigned i = 0; i < m->ncpus; i++) {
        memset(cs, 0, sizeof(*cs));
        if (kvm_vcpu_get_state(m->vcpus[i], cs) < 0) {
            snprintf(err, errlen, "reading vCPU %u's state failed", i);
            goto out;
        }
        if (!cpuid)
            cs->flags &= ~KVM_VCPU_STATE_CPUID;
        state_writer_init(&w);
        mig_put_vcpu_state(&w, i, cs);
        if (state_writer_finish(&w, &buf, &len) < 0) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        r = mig_send_record(ch, MIG_REC_VCPU, i, buf, (uint32_t)len);
        free(buf);
        if (r < 0) {
            snprintf(err, errlen, "%s", ch->err);
            goto out;
        }
    }
    ret = 0;
out:
    free(vs);
    free(cs);
    return ret;
}
