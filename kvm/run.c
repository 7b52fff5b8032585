/* SPDX-License-Identifier: MIT */
/*
 * The run loop: KVM_RUN, the coalesced ring, IO/MMIO dispatch through the
 * address spaces, pause/resume of all vCPUs, and the VM's end.
 *
 * Pause protocol (all under vm->lock): a pauser bumps pause_count, sets
 * kvm_run->immediate_exit on each vCPU in VCPU_RUNNING and signals its
 * thread, then waits until no vCPU is in VCPU_RUNNING (a vCPU thread
 * leaves that state only to park or to exit; a synchronous caller's vCPU
 * is idle between runs).  A vCPU clears immediate_exit and checks
 * pause_count under the same lock right before KVM_RUN, so a pause either
 * parks it there or makes KVM_RUN return at once.
 */
#include <errno.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "kvm/kvm_internal.h"

static __thread KvmVcpu *tls_vcpu; /* the vCPU this thread runs, if any */

/* ---- coalesced ring ---------------------------------------------------- */

void kvm_drain_coalesced(KvmVm *vm)
{
    struct kvm_coalesced_mmio_ring *ring = vm->ring;
    if (!ring)
        return;
    /* cheap check without locks: nothing queued */
    if (__atomic_load_n(&ring->first, __ATOMIC_RELAXED) ==
        __atomic_load_n(&ring->last, __ATOMIC_ACQUIRE))
        return;
    pthread_mutex_lock(&vm->ring_lock);
    ring = vm->ring;
    while (ring) {
        uint32_t first = __atomic_load_n(&ring->first, __ATOMIC_RELAXED);
        uint32_t last = __atomic_load_n(&ring->last, __ATOMIC_ACQUIRE);
        if (first == last)
            break;
        if (first >= vm->ring_max || last >= vm->ring_max) {
            /* The page is shared with the kernel; never index with garbage. */
            if (!vm->ring_warned) {
                vm->ring_warned = true;
                kvm_vm_error(vm,
                             "coalesced MMIO ring: bad indices first=%u last=%u (max %u); "
                             "entries dropped",
                             first, last, vm->ring_max);
            }
            if (last < vm->ring_max)
                __atomic_store_n(&ring->first, last, __ATOMIC_RELEASE);
            break;
        }
        struct kvm_coalesced_mmio e = ring->coalesced_mmio[first];
        __atomic_store_n(&ring->first, (first + 1) % vm->ring_max, __ATOMIC_RELEASE);
        STAT_ADD(vm, coalesced_drained, 1);
        if (e.len == 0 || e.len > sizeof(e.data))
            continue;
        AddressSpace *as = e.pio ? vm->io_as : vm->memory_as;
        if (as)
            address_space_write(as, e.phys_addr, e.data, e.len);
    }
    pthread_mutex_unlock(&vm->ring_lock);
}

/* ---- exit dispatch ------------------------------------------------------ */

typedef struct {
    char text[200];
} ExitErr;

static int handle_io(KvmVcpu *v, ExitErr *err)
{
    struct kvm_run *run = v->run;
    unsigned size = run->io.size;
    uint32_t count = run->io.count;
    uint64_t off = run->io.data_offset;
    uint16_t port = run->io.port;
    if ((size != 1 && size != 2 && size != 4) || count == 0 || off > v->mmap_size ||
        (uint64_t)size * count > v->mmap_size - off) {
        snprintf(err->text, sizeof(err->text),
                 "malformed IO exit: port 0x%x size %u count %u data_offset 0x%llx", port, size,
                 count, (unsigned long long)off);
        return -EIO;
    }
    uint8_t *p = (uint8_t *)run + off;
    AddressSpace *as = v->vm->io_as;
    for (uint32_t i = 0; i < count; i++, p += size) {
        if (run->io.direction == KVM_EXIT_IO_OUT) {
            if (as)
                address_space_write(as, port, p, size);
        } else if (as) {
            address_space_read(as, port, p, size);
        } else {
            memset(p, 0xff, size);
        }
    }
    STAT_ADD(v->vm, exits_io, 1);
    return 0;
}

static int handle_mmio(KvmVcpu *v, ExitErr *err)
{
    struct kvm_run *run = v->run;
    uint32_t len = run->mmio.len;
    if (len == 0 || len > sizeof(run->mmio.data)) {
        snprintf(err->text, sizeof(err->text), "malformed MMIO exit: 0x%llx len %u",
                 (unsigned long long)run->mmio.phys_addr, len);
        return -EIO;
    }
    AddressSpace *as = v->vm->memory_as;
    if (run->mmio.is_write) {
        if (as)
            address_space_write(as, run->mmio.phys_addr, run->mmio.data, len);
    } else if (as) {
        address_space_read(as, run->mmio.phys_addr, run->mmio.data, len);
    } else {
        memset(run->mmio.data, 0xff, len);
    }
    STAT_ADD(v->vm, exits_mmio, 1);
    return 0;
}

static void set_state(KvmVcpu *v, KvmVcpuRunState s)
{
    KvmVm *vm = v->vm;
    pthread_mutex_lock(&vm->lock);
    v->state = s;
    if (vm->pause_count || vm->ended) /* only pausers wait for states */
        pthread_cond_broadcast(&vm->cond);
    pthread_mutex_unlock(&vm->lock);
}

/* Drains the ring and dispatches an IO/MMIO exit. */
static int handle_exit(KvmVcpu *v, int exit_reason, ExitErr *err)
{
    KvmVm *vm = v->vm;
    kvm_drain_coalesced(vm);
    int r = 0;
    switch (exit_reason) {
    case KVM_EXIT_IO:
        r = handle_io(v, err);
        break;
    case KVM_EXIT_MMIO:
        r = handle_mmio(v, err);
        break;
    case KVM_EXIT_DIRTY_RING_FULL:
        /* its ring is (softly) full: empty it, KVM lets it run again */
        kvm_dirty_ring_harvest(vm, v);
        STAT_ADD(vm, dirty_ring_full, 1);
        break;
    default:
        STAT_ADD(vm, exits_other, 1);
        break;
    }
    return r;
}

/* The counter of exit_reason (KVM_EXIT_INTR also for a KVM_RUN cut short
 * by a signal). */
static KvmExitKind exit_kind(int exit_reason)
{
    switch (exit_reason) {
    case KVM_EXIT_IO:
        return KVM_EXITS_IO;
    case KVM_EXIT_MMIO:
        return KVM_EXITS_MMIO;
    case KVM_EXIT_HLT:
        return KVM_EXITS_HLT;
    case KVM_EXIT_SHUTDOWN:
        return KVM_EXITS_SHUTDOWN;
    case KVM_EXIT_SYSTEM_EVENT:
        return KVM_EXITS_SYSTEM_EVENT;
    case KVM_EXIT_IRQ_WINDOW_OPEN:
        return KVM_EXITS_IRQ_WINDOW;
    case KVM_EXIT_INTR:
        return KVM_EXITS_INTR;
    case KVM_EXIT_INTERNAL_ERROR:
        return KVM_EXITS_INTERNAL_ERROR;
    case KVM_EXIT_FAIL_ENTRY:
        return KVM_EXITS_FAIL_ENTRY;
    case KVM_EXIT_DIRTY_RING_FULL:
        return KVM_EXITS_DIRTY_RING_FULL;
    default:
        return KVM_EXITS_OTHER;
    }
}

/* Only the vCPU's thread writes its counters: a relaxed load and store
 * (plain moves, no locked instruction) keep readers tear-free. */
static void count_exit(KvmVcpu *v, int exit_reason)
{
    uint64_t *c = &v->exit_stats.exits[exit_kind(exit_reason)];
    __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
}

const char *kvm_exit_kind_name(KvmExitKind k)
{
    static const char *const names[KVM_EXITS_NR] = {
        [KVM_EXITS_IO] = "io",
        [KVM_EXITS_MMIO] = "mmio",
        [KVM_EXITS_HLT] = "hlt",
        [KVM_EXITS_SHUTDOWN] = "shutdown",
        [KVM_EXITS_SYSTEM_EVENT] = "system-event",
        [KVM_EXITS_IRQ_WINDOW] = "irq-window-open",
        [KVM_EXITS_INTR] = "intr",
        [KVM_EXITS_INTERNAL_ERROR] = "internal-error",
        [KVM_EXITS_FAIL_ENTRY] = "fail-entry",
        [KVM_EXITS_DIRTY_RING_FULL] = "dirty-ring-full",
        [KVM_EXITS_OTHER] = "other",
    };
    return (unsigned)k < KVM_EXITS_NR ? names[k] : "?";
}

void kvm_vcpu_get_exit_stats(const KvmVcpu *vcpu, KvmVcpuExitStats *out)
{
    for (unsigned i = 0; i < KVM_EXITS_NR; i++)
        out->exits[i] = __atomic_load_n(&vcpu->exit_stats.exits[i], __ATOMIC_RELAXED);
    out->throttle_sleeps = __atomic_load_n(&vcpu->exit_stats.throttle_sleeps, __ATOMIC_RELAXED);
    out->throttled_ns = __atomic_load_n(&vcpu->exit_stats.throttled_ns, __ATOMIC_RELAXED);
    /* a sleep under way counts up to now */
    uint64_t since = __atomic_load_n(&vcpu->throttle_sleep_ns, __ATOMIC_RELAXED);
    uint64_t now = kvm_now_ns();
    if (since && now > since)
        out->throttled_ns += now - since;
}

/* A vCPU thread starts away from the core of the thread that started the
 * VM (kvm_vm_start's caller: the VMM's main thread, still setting up and
 * about to answer its control socket) and takes back its whole affinity
 * just before its first KVM_RUN.  Placed on that thread's core, a vCPU in
 * guest mode kept it queued until the next scheduler tick (4 ms at
 * HZ=250) while the other core idled: half the restores of a tiny guest
 * on a 2-core host answered "running" 3-4 ms late.  Only where the
 * thread's affinity has another core; the mask is the thread's own again
 * before the guest runs, so the scheduler places it freely from then on. */
static void vcpu_place_away(KvmVcpu *v)
{
    v->placed_away = false;
    int cpu = v->vm->starter_cpu;
    if (cpu < 0 || sched_getaffinity(0, sizeof(v->affinity), &v->affinity) < 0 ||
        CPU_COUNT(&v->affinity) < 2 || !CPU_ISSET(cpu, &v->affinity))
        return;
    cpu_set_t away = v->affinity;
    CPU_CLR(cpu, &away);
    v->placed_away = sched_setaffinity(0, sizeof(away), &away) == 0;
}

static void vcpu_place_back(KvmVcpu *v)
{
    if (!v->placed_away)
        return;
    v->placed_away = false;
    (void)sched_setaffinity(0, sizeof(v->affinity), &v->affinity); /* a hint: no error matters */
}

/* One KVM_RUN + dispatch; fills err on -EIO.  -ESHUTDOWN if the VM ended. */
static int run_once(KvmVcpu *v, ExitErr *err)
{
    KvmVm *vm = v->vm;
    KvmVcpu *prev = tls_vcpu;
    tls_vcpu = v;

    pthread_mutex_lock(&vm->lock);
    if (!v->threaded)
        v->thread = pthread_self();
    v->run->immediate_exit = 0;
    while (vm->pause_count && !vm->ended) {
        v->state = VCPU_PARKED;
        pthread_cond_broadcast(&vm->cond);
        pthread_cond_wait(&vm->cond, &vm->lock);
        v->throttle_start_ns = 0; /* time parked is not time run: the share starts again */
    }
    if (vm->ended) {
        v->state = VCPU_IDLE;
        pthread_cond_broadcast(&vm->cond);
        pthread_mutex_unlock(&vm->lock);
        tls_vcpu = prev;
        return -ESHUTDOWN;
    }
    v->state = VCPU_RUNNING;
    pthread_mutex_unlock(&vm->lock);
    vcpu_place_back(v);

    int exit_reason;
    int r = ioctl(v->fd, KVM_RUN, 0);
    if (r < 0) {
        int e = errno;
        if (e != EINTR && e != EAGAIN) {
            snprintf(err->text, sizeof(err->text), "KVM_RUN: %s", strerror(e));
            if (!v->threaded)
                set_state(v, VCPU_IDLE);
            tls_vcpu = prev;
            return -e;
        }
        exit_reason = KVM_EXIT_INTR;
    } else {
        exit_reason = (int)v->run->exit_reason;
    }
    count_exit(v, exit_reason);
    r = handle_exit(v, exit_reason, err);
    /* A vCPU thread stays RUNNING until it parks (or exits), so a pause
     * returns only once it is really parked; a synchronous caller's vCPU
     * is idle between calls. */
    if (!v->threaded)
        set_state(v, VCPU_IDLE);
    tls_vcpu = prev;
    return r < 0 ? r : exit_reason;
}

static void end_fill(KvmVmEnd *end, KvmEndReason reason, int vcpu, int code, const char *text)
{
    end->reason = reason;
    end->vcpu = vcpu;
    end->code = code;
    snprintf(end->text, sizeof(end->text), "%s", text ? text : kvm_end_reason_str(reason));
}

/* Turns the result of run_once into an end reason (KVM_END_NONE: go on). */
static KvmEndReason classify(KvmVcpu *v, int r, const ExitErr *err, KvmVmEnd *end)
{
    KvmVm *vm = v->vm;
    struct kvm_run *run = v->run;
    char text[256];
    int idx = (int)v->index;

    if (r == -ESHUTDOWN) {
        pthread_mutex_lock(&vm->lock);
        *end = vm->end;
        pthread_mutex_unlock(&vm->lock);
        return end->reason;
    }
    if (r < 0) {
        snprintf(text, sizeof(text), "vCPU %d: %s", idx, err->text);
        end_fill(end, KVM_END_ERROR, idx, 0, text);
        fprintf(stderr, "%s\n", text);
        return KVM_END_ERROR;
    }
    switch (r) {
    case KVM_EXIT_IO:
    case KVM_EXIT_MMIO:
    case KVM_EXIT_INTR:
    case KVM_EXIT_IRQ_WINDOW_OPEN:
    case KVM_EXIT_DIRTY_RING_FULL:
        return KVM_END_NONE;
    case KVM_EXIT_HLT:
        end_fill(end, KVM_END_HLT, idx, 0, NULL);
        return KVM_END_HLT;
    case KVM_EXIT_SHUTDOWN:
        /* a triple fault is a guest crash: its registers say where */
        fprintf(stderr, "vCPU %d: triple fault; its state:\n", idx);
        kvm_vcpu_dump(v, stderr);
        end_fill(end, KVM_END_SHUTDOWN, idx, 0, NULL);
        return KVM_END_SHUTDOWN;
    case KVM_EXIT_SYSTEM_EVENT:
        switch (run->system_event.type) {
        case KVM_SYSTEM_EVENT_SHUTDOWN:
            end_fill(end, KVM_END_SYSTEM_SHUTDOWN, idx, 0, NULL);
            return KVM_END_SYSTEM_SHUTDOWN;
        case KVM_SYSTEM_EVENT_RESET:
            end_fill(end, KVM_END_SYSTEM_RESET, idx, 0, NULL);
            return KVM_END_SYSTEM_RESET;
        default:
            snprintf(text, sizeof(text), "vCPU %d: system event %u%s", idx, run->system_event.type,
                     run->system_event.type == KVM_SYSTEM_EVENT_CRASH ? " (crash)" : "");
            end_fill(end, KVM_END_ERROR, idx, 0, text);
            fprintf(stderr, "%s\n", text);
            return KVM_END_ERROR;
        }
    case KVM_EXIT_FAIL_ENTRY:
        snprintf(text, sizeof(text),
                 "vCPU %d: fail entry: hardware entry failure reason 0x%llx (cpu %u)", idx,
                 (unsigned long long)run->fail_entry.hardware_entry_failure_reason,
                 run->fail_entry.cpu);
        fprintf(stderr, "%s\n", text);
        kvm_vcpu_dump(v, stderr);
        end_fill(end, KVM_END_ERROR, idx, 0, text);
        return KVM_END_ERROR;
    case KVM_EXIT_INTERNAL_ERROR: {
        unsigned sub = run->internal.suberror;
        const char *what = sub == KVM_INTERNAL_ERROR_EMULATION ? " (emulation failure)"
                           : sub == KVM_INTERNAL_ERROR_SIMUL_EX
                               ? " (exception while delivering one)"
                           : sub == KVM_INTERNAL_ERROR_DELIVERY_EV ? " (event delivery)"
                                                                   : "";
        int n = snprintf(text, sizeof(text), "vCPU %d: internal error: suberror %u%s", idx, sub,
                         what);
        uint32_t nd = run->internal.ndata;
        if (nd > sizeof(run->internal.data) / sizeof(run->internal.data[0]))
            nd = sizeof(run->internal.data) / sizeof(run->internal.data[0]);
        for (uint32_t i = 0; i < nd && n > 0 && (size_t)n < sizeof(text); i++)
            n += snprintf(text + n, sizeof(text) - (size_t)n, " 0x%llx",
                          (unsigned long long)run->internal.data[i]);
        fprintf(stderr, "%s\n", text);
        kvm_vcpu_dump(v, stderr);
        end_fill(end, KVM_END_ERROR, idx, 0, text);
        return KVM_END_ERROR;
    }
    default:
        snprintf(text, sizeof(text), "vCPU %d: unhandled KVM exit reason %d", idx, r);
        fprintf(stderr, "%s\n", text);
        kvm_vcpu_dump(v, stderr);
        end_fill(end, KVM_END_ERROR, idx, 0, text);
        return KVM_END_ERROR;
    }
}

KvmEndReason kvm_vcpu_run_until_exit(KvmVcpu *vcpu, KvmVmEnd *out)
{
    KvmVmEnd end;
    end_fill(&end, KVM_END_NONE, -1, 0, NULL);
    for (;;) {
        ExitErr err = { "" };
        int r = run_once(vcpu, &err);
        KvmEndReason why = classify(vcpu, r, &err, &end);
        if (why != KVM_END_NONE) {
            if (out)
                *out = end;
            return why;
        }
    }
}

/* ---- the VM's end -------------------------------------------------------- */

bool kvm_kick_running(KvmVm *vm)
{
    bool busy = false;
    for (unsigned i = 0; i < vm->nvcpus; i++) {
        KvmVcpu *v = vm->vcpus[i];
        if (v == tls_vcpu || v->state != VCPU_RUNNING)
            continue;
        busy = true;
        v->run->immediate_exit = 1;
        pthread_kill(v->thread, kvm_kick_signal());
    }
    return busy;
}

static void end_vm(KvmVm *vm, KvmEndReason reason, int vcpu, int code, const char *text)
{
    pthread_mutex_lock(&vm->lock);
    if (!vm->ended) {
        vm->ended = true;
        end_fill(&vm->end, reason, vcpu, code, text);
    }
    kvm_kick_running(vm);
    pthread_cond_broadcast(&vm->cond);
    pthread_mutex_unlock(&vm->lock);
}

void kvm_vm_request_end(KvmVm *vm, KvmEndReason reason, int code, const char *text)
{
    end_vm(vm, reason, tls_vcpu && tls_vcpu->vm == vm ? (int)tls_vcpu->index : -1, code, text);
}

bool kvm_vm_ended(const KvmVm *vm)
{
    KvmVm *m = (KvmVm *)vm;
    pthread_mutex_lock(&m->lock);
    bool e = m->ended;
    pthread_mutex_unlock(&m->lock);
    return e;
}

static void *vcpu_thread(void *arg)
{
    KvmVcpu *v = arg;
    vcpu_place_away(v);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, kvm_kick_signal());
    sigaddset(&set, SIGSEGV);
    sigaddset(&set, SIGBUS);
    sigaddset(&set, SIGFPE);
    sigaddset(&set, SIGILL);
    sigaddset(&set, SIGABRT);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    tls_vcpu = v;
    pthread_mutex_lock(&v->vm->lock);
    __atomic_store_n(&v->tid, (int)syscall(SYS_gettid), __ATOMIC_RELEASE);
    pthread_cond_broadcast(&v->vm->cond);
    pthread_mutex_unlock(&v->vm->lock);
    if (v->vm->thread_hook && v->vm->thread_hook(v->vm->thread_hook_opaque, v) < 0) {
        char text[64];
        snprintf(text, sizeof(text), "vCPU %u: the thread-start hook failed", v->index);
        end_vm(v->vm, KVM_END_ERROR, (int)v->index, 0, text);
        set_state(v, VCPU_IDLE);
        return NULL;
    }
    for (;;) {
        ExitErr err = { "" };
        KvmVmEnd end;
        kvm_throttle(v);
        int r = run_once(v, &err);
        if (r == -ESHUTDOWN)
            break;
        if (classify(v, r, &err, &end) != KVM_END_NONE) {
            end_vm(v->vm, end.reason, end.vcpu, end.code, end.text);
            break;
        }
    }
    set_state(v, VCPU_IDLE);
    return NULL;
}

int kvm_vcpu_thread_id(const KvmVcpu *vcpu)
{
    int tid = __atomic_load_n(&vcpu->tid, __ATOMIC_ACQUIRE);
    if (tid)
        return tid;
    /* started but not yet scheduled: kvm_vm_start does not wait for it */
    KvmVm *vm = vcpu->vm;
    pthread_mutex_lock(&vm->lock);
    while (vcpu->threaded && !(tid = __atomic_load_n(&vcpu->tid, __ATOMIC_ACQUIRE)))
        pthread_cond_wait(&vm->cond, &vm->lock);
    pthread_mutex_unlock(&vm->lock);
    return tid;
}

int kvm_vm_start(KvmVm *vm)
{
    pthread_mutex_lock(&vm->lock);
    if (vm->started) {
        pthread_mutex_unlock(&vm->lock);
        kvm_vm_error(vm, "kvm_vm_start: the VM was started already");
        return -EALREADY;
    }
    vm->started = true;
    vm->starter_cpu = sched_getcpu();
    int r = 0;
    /* vCPU threads start with every signal blocked (the VMM's main thread
     * handles them) except the kick, which vcpu_thread unblocks. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (unsigned i = 0; i < vm->nvcpus; i++) {
        KvmVcpu *v = vm->vcpus[i];
        v->threaded = true;
        int e = pthread_create(&v->thread, NULL, vcpu_thread, v);
        if (e) {
            v->threaded = false;
            r = -e;
            break;
        }
    }
    if (r == 0 && vm->nvcpus) {
        int e = pthread_create(&vm->ticker, NULL, kvm_ticker_thread, vm);
        vm->ticker_started = e == 0;
        if (e) /* the guest runs; kvm_vm_set_throttle does nothing */
            kvm_vm_error(vm, "the vCPU throttle's thread: pthread_create: %s", strerror(e));
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    /* Not waiting for the threads to run: on a host with as many busy
     * vCPUs as cores a new thread may wait for the next scheduler tick
     * (up to 4 ms measured on 2 cores); kicks go by pthread_t and
     * kvm_vcpu_thread_id waits for its thread's id itself. */
    pthread_mutex_unlock(&vm->lock);
    if (r < 0) {
        kvm_vm_error(vm, "vCPU thread: pthread_create: %s", strerror(-r));
        end_vm(vm, KVM_END_ERROR, -1, 0, "could not start the vCPU threads");
    }
    return r;
}

void kvm_vcpu_join_all(KvmVm *vm)
{
    for (unsigned i = 0; i < vm->nvcpus; i++) {
        KvmVcpu *v = vm->vcpus[i];
        pthread_mutex_lock(&vm->lock);
        bool join = v->threaded && !v->joined && v != tls_vcpu;
        if (join)
            v->joined = true;
        pthread_mutex_unlock(&vm->lock);
        if (join)
            pthread_join(v->thread, NULL);
    }
    /* the ticker leaves once the VM has ended */
    pthread_mutex_lock(&vm->lock);
    bool join = vm->ticker_started && vm->ended;
    vm->ticker_started &= !join;
    pthread_mutex_unlock(&vm->lock);
    if (join)
        pthread_join(vm->ticker, NULL);
}

KvmEndReason kvm_vm_wait(KvmVm *vm, KvmVmEnd *out)
{
    pthread_mutex_lock(&vm->lock);
    while (!vm->ended) {
        if (!vm->started) { /* nothing could ever end it */
            pthread_mutex_unlock(&vm->lock);
            if (out)
                end_fill(out, KVM_END_NONE, -1, 0, NULL);
            return KVM_END_NONE;
        }
        pthread_cond_wait(&vm->cond, &vm->lock);
    }
    KvmVmEnd end = vm->end;
    pthread_mutex_unlock(&vm->lock);
    kvm_vcpu_join_all(vm);
    if (out)
        *out = end;
    return end.reason;
}

/* ---- pause / resume -------------------------------------------------------- */

int kvm_vm_pause(KvmVm *vm)
{
    pthread_mutex_lock(&vm->lock);
    vm->pause_count++;
    /* A vCPU thread pausing (from a device callback) counts as stopped. */
    KvmVcpu *self = tls_vcpu && tls_vcpu->vm == vm ? tls_vcpu : NULL;
    KvmVcpuRunState self_state = self ? self->state : VCPU_IDLE;
    if (self)
        self->state = VCPU_IDLE;
    while (kvm_kick_running(vm)) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += 20 * 1000000L; /* re-kick now and then, to be safe */
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&vm->cond, &vm->lock, &ts);
    }
    if (self)
        self->state = self_state;
    pthread_mutex_unlock(&vm->lock);
    return 0;
}

void kvm_vm_resume(KvmVm *vm)
{
    pthread_mutex_lock(&vm->lock);
    if (vm->pause_count && --vm->pause_count == 0)
        pthread_cond_broadcast(&vm->cond);
    pthread_mutex_unlock(&vm->lock);
}

bool kvm_vm_paused(const KvmVm *vm)
{
    KvmVm *m = (KvmVm *)vm;
    pthread_mutex_lock(&m->lock);
    bool p = m->pause_count > 0;
    pthread_mutex_unlock(&m->lock);
    return p;
}
