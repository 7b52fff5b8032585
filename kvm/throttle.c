/* SPDX-License-Identifier: MIT */
/*
 * Throttling: auto-converge's share of sleep for every vCPU thread
 * (kvm_vm_set_throttle), the dirty limit's per-vCPU share
 * (kvm_vm_set_dirty_limit), and the ticker thread that kicks throttled
 * vCPUs out of KVM_RUN and runs the dirty limit's periods.  The run loop
 * (run.c) calls kvm_throttle before each KVM_RUN of a vCPU thread.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "kvm/kvm_internal.h"

#define THROTTLE_PERIOD_NS ((uint64_t)KVM_THROTTLE_PERIOD_MS * 1000000ull)
#define THROTTLE_KICK_NS (THROTTLE_PERIOD_NS / 10)       /* the ticker's cadence */
#define THROTTLE_SLEEP_MAX_NS (THROTTLE_PERIOD_NS * 100) /* one sleep at most */

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t kvm_now_ns(void)
{
    return mono_ns();
}

static struct timespec ns_timespec(uint64_t ns)
{
    return (struct timespec){ .tv_sec = (time_t)(ns / 1000000000ull),
                              .tv_nsec = (long)(ns % 1000000000ull) };
}

/*
 * Before each KVM_RUN of a vCPU thread: once it has run its share of the
 * period, it sleeps the rest.  The ticker kicks it out of KVM_RUN every
 * KICK_NS; a kick that comes late makes the sleep longer in proportion,
 * so the share holds whatever the kicks' timing.
 */
/* The share a vCPU is to sleep: the VM's throttle or its dirty limit's. */
static unsigned throttle_share(const KvmVcpu *v)
{
    unsigned pct = __atomic_load_n(&v->vm->throttle_pct, __ATOMIC_RELAXED);
    unsigned own = __atomic_load_n(&v->limit_pct, __ATOMIC_RELAXED);
    return own > pct ? own : pct;
}

void kvm_throttle(KvmVcpu *v)
{
    unsigned pct = throttle_share(v);
    if (!pct) {
        v->throttle_start_ns = 0;
        return;
    }
    uint64_t now = mono_ns();
    if (!v->throttle_start_ns) {
        v->throttle_start_ns = now;
        return;
    }
    uint64_t ran = now - v->throttle_start_ns;
    if (ran < THROTTLE_PERIOD_NS * (100 - pct) / 100)
        return;
    uint64_t sleep_ns = ran * pct / (100 - pct);
    if (sleep_ns > THROTTLE_SLEEP_MAX_NS)
        sleep_ns = THROTTLE_SLEEP_MAX_NS;
    struct timespec until = ns_timespec(now + sleep_ns);
    KvmVm *vm = v->vm;
    __atomic_store_n(&v->throttle_sleeping, true, __ATOMIC_RELAXED); /* the ticker skips it */
    __atomic_store_n(&v->throttle_sleep_ns, now, __ATOMIC_RELAXED);
    /* a kick for a pause or the end cuts the sleep short: run_once acts */
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == EINTR) {
        pthread_mutex_lock(&vm->lock);
        bool wanted = vm->pause_count || vm->ended || throttle_share(v) != pct;
        pthread_mutex_unlock(&vm->lock);
        if (wanted)
            break;
    }
    __atomic_store_n(&v->throttle_sleeping, false, __ATOMIC_RELAXED);
    v->throttle_start_ns = mono_ns();
    KvmVcpuExitStats *st = &v->exit_stats; /* this thread alone writes them */
    __atomic_store_n(&st->throttle_sleeps, st->throttle_sleeps + 1, __ATOMIC_RELAXED);
    __atomic_store_n(&st->throttled_ns, st->throttled_ns + (v->throttle_start_ns - now),
                     __ATOMIC_RELAXED);
    __atomic_store_n(&v->throttle_sleep_ns, 0, __ATOMIC_RELAXED);
}

/*
 * The ticker: while the VM is throttled, kicks every vCPU in KVM_RUN each
 * KICK_NS (a signal from another thread: a timer's signal raised on the
 * vCPU's own CPU does not end KVM_RUN under every KVM, PVM's among them);
 * otherwise waits.  Runs the thread hook first, like a vCPU thread.
 */
/*
 * One period of the dirty limit (the ticker, vm->lock not held): harvest
 * the rings, then per vCPU its rate over the period and a new throttle:
 * the share it runs is scaled by limit / rate (at most halved or doubled
 * at a time), so a vCPU over the limit slows down and one under it
 * speeds up again, to full speed (and no kicks) once it is well under.
 * The new shares go to limit_pct_next: the ticker applies them under
 * vm->lock if the limit is still on (dirty_limit_apply), so a limit
 * switched off meanwhile leaves no vCPU throttled.
 */
static void dirty_limit_period(KvmVm *vm, uint64_t dt_ns)
{
    unsigned limit = __atomic_load_n(&vm->dirty_limit, __ATOMIC_RELAXED);
    kvm_dirty_ring_harvest(vm, NULL);
    for (unsigned i = 0; i < vm->nvcpus; i++) {
        KvmVcpu *v = vm->vcpus[i];
        unsigned pct = __atomic_load_n(&v->limit_pct, __ATOMIC_RELAXED);
        v->limit_pct_next = pct; /* unchanged unless decided below */
        uint64_t pages = kvm_vcpu_dirty_pages(v);
        uint64_t d = pages - v->limit_pages0;
        v->limit_pages0 = pages;
        double rate = (double)d * 4096.0 / (1024.0 * 1024.0) * 1e9 / (double)(dt_ns ? dt_ns : 1);
        __atomic_store_n(&v->limit_rate, (uint64_t)rate, __ATOMIC_RELAXED);
        if (!limit)
            continue;
        double run = (100.0 - pct) / 100.0;
        double scale = rate > 0 ? (double)limit / rate : 2.0;
        if (scale < 0.5)
            scale = 0.5;
        if (scale > 2.0)
            scale = 2.0;
        if (rate <= limit && !pct)
            continue; /* under the limit at full speed: left alone */
        run *= scale;
        unsigned npct = run >= 0.99   ? 0
                        : run <= 0.01 ? KVM_THROTTLE_MAX
                                      : (unsigned)(100.0 - run * 100.0);
        if (npct > KVM_THROTTLE_MAX)
            npct = KVM_THROTTLE_MAX;
        v->limit_pct_next = npct;
    }
}

/* The period's new shares (vm->lock held), unless the limit went off while
 * the period was measured: kvm_vm_set_dirty_limit(0) has set them to 0. */
static void dirty_limit_apply(KvmVm *vm)
{
    if (!__atomic_load_n(&vm->dirty_limit, __ATOMIC_RELAXED))
        return;
    for (unsigned i = 0; i < vm->nvcpus; i++)
        __atomic_store_n(&vm->vcpus[i]->limit_pct, vm->vcpus[i]->limit_pct_next, __ATOMIC_RELAXED);
}

void *kvm_ticker_thread(void *arg)
{
    KvmVm *vm = arg;
    if (vm->thread_hook && vm->thread_hook(vm->thread_hook_opaque, NULL) < 0) {
        kvm_vm_error(vm, "the vCPU throttle's thread: the thread-start hook failed; "
                         "throttling does nothing");
        return NULL;
    }
    pthread_mutex_lock(&vm->lock);
    while (!vm->ended) {
        struct timespec ts;
        bool all = __atomic_load_n(&vm->throttle_pct, __ATOMIC_RELAXED) != 0;
        bool limit = __atomic_load_n(&vm->dirty_limit, __ATOMIC_RELAXED) != 0;
        if (!all && !limit) {
            pthread_cond_wait(&vm->cond, &vm->lock);
            vm->dirty_limit_last_ns = 0;
            continue;
        }
        for (unsigned i = 0; i < vm->nvcpus; i++) {
            KvmVcpu *v = vm->vcpus[i];
            if (v->state == VCPU_RUNNING && (all || v->limit_pct) &&
                !__atomic_load_n(&v->throttle_sleeping, __ATOMIC_RELAXED))
                pthread_kill(v->thread, kvm_kick_signal());
        }
        uint64_t now = mono_ns();
        uint64_t period = (uint64_t)vm->dirty_limit_period_ms * 1000000ull;
        if (limit && !vm->dirty_limit_last_ns) {
            vm->dirty_limit_last_ns = now; /* the first period starts */
            for (unsigned i = 0; i < vm->nvcpus; i++)
                vm->vcpus[i]->limit_pages0 = kvm_vcpu_dirty_pages(vm->vcpus[i]);
        } else if (limit && now - vm->dirty_limit_last_ns >= period) {
            uint64_t dt = now - vm->dirty_limit_last_ns;
            vm->dirty_limit_last_ns = now;
            pthread_mutex_unlock(&vm->lock); /* a harvest takes it */
            dirty_limit_period(vm, dt);
            pthread_mutex_lock(&vm->lock);
            dirty_limit_apply(vm);
        }
        ts = ns_timespec(mono_ns() + THROTTLE_KICK_NS);
        pthread_cond_timedwait(&vm->cond, &vm->lock, &ts);
    }
    pthread_mutex_unlock(&vm->lock);
    return NULL;
}

void kvm_vm_set_throttle(KvmVm *vm, unsigned pct)
{
    if (pct > KVM_THROTTLE_MAX)
        pct = KVM_THROTTLE_MAX;
    pthread_mutex_lock(&vm->lock);
    unsigned old = __atomic_exchange_n(&vm->throttle_pct, pct, __ATOMIC_RELAXED);
    if (!old && pct) /* wakes the ticker */
        pthread_cond_broadcast(&vm->cond);
    if (pct < old) /* a vCPU asleep at the old share wakes up for the new one */
        kvm_kick_running(vm);
    pthread_mutex_unlock(&vm->lock);
}

int kvm_vm_set_dirty_limit(KvmVm *vm, unsigned mbps, unsigned period_ms)
{
    if (mbps && !vm->dirty_ring) {
        kvm_vm_error(vm, "dirty limit: needs the dirty ring (this VM reads the bitmap)");
        return -ENOTSUP;
    }
    if (period_ms < 1)
        period_ms = 1;
    if (period_ms > 1000)
        period_ms = 1000;
    pthread_mutex_lock(&vm->lock);
    unsigned old = __atomic_exchange_n(&vm->dirty_limit, mbps, __ATOMIC_RELAXED);
    vm->dirty_limit_period_ms = period_ms;
    if (!old && mbps) { /* the ticker starts a period */
        vm->dirty_limit_last_ns = 0;
        pthread_cond_broadcast(&vm->cond);
    }
    if (!mbps) {
        for (unsigned i = 0; i < vm->nvcpus; i++) {
            __atomic_store_n(&vm->vcpus[i]->limit_pct, 0, __ATOMIC_RELAXED);
            __atomic_store_n(&vm->vcpus[i]->limit_rate, 0, __ATOMIC_RELAXED);
        }
        if (old)
            kvm_kick_running(vm); /* sleeping ones wake up to run at full speed */
    }
    pthread_mutex_unlock(&vm->lock);
    return 0;
}

unsigned kvm_vm_dirty_limit(const KvmVm *vm)
{
    return __atomic_load_n(&vm->dirty_limit, __ATOMIC_RELAXED);
}

unsigned kvm_vcpu_dirty_limit_pct(const KvmVcpu *vcpu)
{
    return __atomic_load_n(&vcpu->limit_pct, __ATOMIC_RELAXED);
}

uint64_t kvm_vcpu_dirty_rate(const KvmVcpu *vcpu)
{
    return __atomic_load_n(&vcpu->limit_rate, __ATOMIC_RELAXED);
}

unsigned kvm_vm_throttle(const KvmVm *vm)
{
    return __atomic_load_n(&vm->throttle_pct, __ATOMIC_RELAXED);
}
