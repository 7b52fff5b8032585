/* SPDX-License-Identifier: MIT */
/*
 * calc-dirty-rate / query-dirty-rate (QEMU 8's names, arguments and
 * answer).  A measurement makes every RAM slot log (kvm_vm_set_dirty_log_all),
 * pulls the dirty log once to start from nothing, and after calc-time
 * (a timerfd on the main loop) pulls it again: the pages the log reported
 * in between are the dirty pages of the window, per vCPU too with the
 * dirty ring.  Modes: dirty-ring (the VM reads KVM's dirty ring) and
 * dirty-bitmap (it reads the slot bitmaps); as in QEMU, each only where
 * the VM uses that log.  page-sampling (hashing sampled pages) is not
 * implemented: refused with a message.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "vmm/control/dirtyrate.h"
#include "vmm/runstate.h"
#include "vmm/vmm.h"

#define MODE_PAGE_SAMPLING 0
#define MODE_DIRTY_BITMAP 1
#define MODE_DIRTY_RING 2

static const char *const mode_names[] = { "page-sampling", "dirty-bitmap", "dirty-ring" };

enum { ST_UNSTARTED = 0, ST_MEASURING, ST_MEASURED };
static const char *const status_names[] = { "unstarted", "measuring", "measured" };

struct DirtyRate {
    EvSource src;
    int timerfd;
    Vmm *v;
    int status;
    int mode;
    int64_t start_time; /* CLOCK_REALTIME seconds */
    int64_t calc_ms;    /* the window asked for */
    bool unit_ms;       /* calc-time was given in ms */
    int64_t sample_pages;
    uint64_t t0_ns;
    uint64_t pages0; /* kvm/'s dirty_pages at the start */
    uint64_t *vcpu0; /* each vCPU's ring pages at the start */
    unsigned nvcpus;
    int64_t rate; /* MB/s (MiB, as QEMU) */
    int64_t *vcpu_rate;
};

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* pages over ns, in MiB/s */
static int64_t mib_per_s(uint64_t pages, uint64_t ns)
{
    if (!ns)
        return 0;
    return (int64_t)((double)pages * 4096.0 / (1024.0 * 1024.0) * 1e9 / (double)ns);
}

/* The window ended: pull the log again and compute the rates. */
static void finish(DirtyRate *d)
{
    KvmVm *vm = d->v->m.vm;
    kvm_vm_dirty_log_sync(vm);
    uint64_t dt = mono_ns() - d->t0_ns;
    KvmVmStats st;
    kvm_vm_get_stats(vm, &st);
    d->rate = mib_per_s(st.dirty_pages - d->pages0, dt);
    for (unsigned i = 0; i < d->nvcpus; i++) {
        KvmVcpu *cpu = kvm_vm_vcpu(vm, i);
        uint64_t now = cpu ? kvm_vcpu_dirty_pages(cpu) : d->vcpu0[i];
        d->vcpu_rate[i] = mib_per_s(now - d->vcpu0[i], dt);
    }
    kvm_vm_set_dirty_log_all(vm, false);
    d->status = ST_MEASURED;
}

static void on_timer(EvSource *src, uint32_t events)
{
    DirtyRate *d = (DirtyRate *)src;
    uint64_t n;
    (void)events;
    if (read(d->timerfd, &n, sizeof(n)) < 0)
        return;
    if (d->status == ST_MEASURING)
        finish(d);
}

int vmm_dirtyrate_init(Vmm *v)
{
    DirtyRate *d = calloc(1, sizeof(*d));
    if (!d)
        return -1;
    d->v = v;
    d->src.handler = on_timer;
    d->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (d->timerfd < 0 || ev_add(v->epfd, d->timerfd, EPOLLIN, &d->src) < 0) {
        fprintf(stderr, "strata: calc-dirty-rate: its timer: %s\n", strerror(errno));
        if (d->timerfd >= 0)
            close(d->timerfd);
        free(d);
        return -1;
    }
    v->dirtyrate = d;
    return 0;
}

void vmm_dirtyrate_free(Vmm *v)
{
    DirtyRate *d = v->dirtyrate;
    if (!d)
        return;
    close(d->timerfd);
    free(d->vcpu0);
    free(d->vcpu_rate);
    free(d);
    v->dirtyrate = NULL;
}

static int mode_by_name(const char *s)
{
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, mode_names[i]))
            return i;
    return -1;
}

static json_t *q_calc(void *o, QmpClient *c, json_t *a, QmpError *err)
{
    Vmm *v = o;
    DirtyRate *d = v->dirtyrate;
    (void)c;
    if (!d || !v->m.vm) {
        qmp_error_set(err, "calc-dirty-rate: no VM to measure");
        return NULL;
    }
    if (d->status == ST_MEASURING) {
        qmp_error_set(err, "the dirty rate is already being measured.");
        return NULL;
    }
    json_int_t t = json_integer_value(json_object_get(a, "calc-time"));
    json_t *ju = json_object_get(a, "calc-time-unit");
    const char *unit = ju ? json_string_value(ju) : "s";
    if (strcmp(unit, "s") && strcmp(unit, "ms")) {
        qmp_error_set(err, "Parameter 'calc-time-unit' does not accept value '%s'", unit);
        return NULL;
    }
    bool ms = !strcmp(unit, "ms");
    int64_t calc_ms = ms ? (int64_t)t : (int64_t)t * 1000;
    if (t <= 0 || calc_ms < DIRTYRATE_MIN_MS || calc_ms > DIRTYRATE_MAX_MS) {
        qmp_error_set(err, "Calculation time is out of range [%dms, %dms].", DIRTYRATE_MIN_MS,
                      DIRTYRATE_MAX_MS);
        return NULL;
    }
    json_t *jm = json_object_get(a, "mode");
    const char *mname = jm ? json_string_value(jm) : "page-sampling";
    int mode = mode_by_name(mname);
    if (mode < 0) {
        qmp_error_set(err, "Parameter 'mode' does not accept value '%s'", mname);
        return NULL;
    }
    json_t *js = json_object_get(a, "sample-pages");
    if (js && mode != MODE_PAGE_SAMPLING) {
        qmp_error_set(err, "sample-pages is used only in page-sampling mode");
        return NULL;
    }
    if (mode == MODE_PAGE_SAMPLING) {
        qmp_error_set(err, "mode page-sampling is not supported by strata: use mode dirty-ring or "
                           "dirty-bitmap (the one of the dirty log this VM uses, query-migrate's "
                           "x-dirty-log)");
        return NULL;
    }
    bool ring = kvm_vm_dirty_ring_size(v->m.vm) != 0;
    if ((mode == MODE_DIRTY_RING) != ring) {
        qmp_error_set(err, "mode %s is not enabled, use other method instead.", mname);
        return NULL;
    }
    KvmVm *vm = v->m.vm;
    unsigned n = kvm_vm_nr_vcpus(vm);
    if (n != d->nvcpus) {
        uint64_t *z = realloc(d->vcpu0, (n ? n : 1) * sizeof(*z));
        if (z)
            d->vcpu0 = z;
        int64_t *r = z ? realloc(d->vcpu_rate, (n ? n : 1) * sizeof(*r)) : NULL;
        if (!z || !r) {
            qmp_error_set(err, "calc-dirty-rate: out of memory");
            return NULL;
        }
        d->vcpu_rate = r;
        d->nvcpus = n;
    }
    kvm_vm_set_dirty_log_all(vm, true);
    kvm_vm_dirty_log_sync(vm); /* what was dirtied before does not count */
    KvmVmStats st;
    kvm_vm_get_stats(vm, &st);
    d->pages0 = st.dirty_pages;
    for (unsigned i = 0; i < n; i++) {
        KvmVcpu *cpu = kvm_vm_vcpu(vm, i);
        d->vcpu0[i] = cpu ? kvm_vcpu_dirty_pages(cpu) : 0;
        d->vcpu_rate[i] = 0;
    }
    d->t0_ns = mono_ns();
    d->start_time = (int64_t)time(NULL);
    d->calc_ms = calc_ms;
    d->unit_ms = ms;
    d->mode = mode;
    d->sample_pages = 0;
    d->rate = 0;
    struct itimerspec its = { { 0, 0 },
                              { (time_t)(calc_ms / 1000), (long)(calc_ms % 1000) * 1000000L } };
    if (timerfd_settime(d->timerfd, 0, &its, NULL) < 0) {
        kvm_vm_set_dirty_log_all(vm, false);
        qmp_error_set(err, "calc-dirty-rate: timer: %s", strerror(errno));
        return NULL;
    }
    d->status = ST_MEASURING;
    return json_object();
}

static json_t *q_query(void *o, QmpClient *c, json_t *a, QmpError *err)
{
    Vmm *v = o;
    DirtyRate *d = v->dirtyrate;
    (void)c;
    json_t *ju = json_object_get(a, "calc-time-unit");
    const char *unit = ju ? json_string_value(ju) : NULL;
    if (unit && strcmp(unit, "s") && strcmp(unit, "ms")) {
        qmp_error_set(err, "Parameter 'calc-time-unit' does not accept value '%s'", unit);
        return NULL;
    }
    if (!d) {
        qmp_error_set(err, "query-dirty-rate: no VM");
        return NULL;
    }
    bool ms = unit ? !strcmp(unit, "ms") : d->unit_ms;
    json_t *r = json_pack("{s:s,s:I,s:I,s:s,s:I,s:s}", "status", status_names[d->status],
                          "start-time", (json_int_t)d->start_time, "calc-time",
                          (json_int_t)(ms ? d->calc_ms : d->calc_ms / 1000), "calc-time-unit",
                          ms ? "ms" : "s", "sample-pages", (json_int_t)d->sample_pages, "mode",
                          mode_names[d->mode]);
    if (d->status == ST_MEASURED) {
        json_object_set_new(r, "dirty-rate", json_integer((json_int_t)d->rate));
        if (d->mode == MODE_DIRTY_RING) {
            json_t *arr = json_array();
            for (unsigned i = 0; i < d->nvcpus; i++)
                json_array_append_new(arr, json_pack("{s:i,s:I}", "id", (int)i, "dirty-rate",
                                                     (json_int_t)d->vcpu_rate[i]));
            json_object_set_new(r, "vcpu-dirty-rate", arr);
        }
    }
    return r;
}

const QmpArg vmm_calc_dirty_rate_args[] = {
    { "calc-time", QMP_ARG_INT, false },
    { "calc-time-unit", QMP_ARG_STRING, true },
    { "sample-pages", QMP_ARG_INT, true },
    { "mode", QMP_ARG_STRING, true },
    { NULL, 0, false },
};
const QmpArg vmm_query_dirty_rate_args[] = {
    { "calc-time-unit", QMP_ARG_STRING, true },
    { NULL, 0, false },
};

json_t *vmm_qmp_calc_dirty_rate(void *o, QmpClient *c, json_t *a, QmpError *err)
{
    return q_calc(o, c, a, err);
}

json_t *vmm_qmp_query_dirty_rate(void *o, QmpClient *c, json_t *a, QmpError *err)
{
    return q_query(o, c, a, err);
}
