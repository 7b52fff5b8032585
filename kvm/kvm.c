/* SPDX-License-Identifier: MIT */
/* The KVM VM object: opening /dev/kvm, capabilities, life cycle, stats. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "kvm/kvm_internal.h"

#define KVM_TSS_ADDR 0xfffbd000ul

typedef struct KvmCapReq {
    const char *name;
    long cap;
    bool required; /* false: only when the config asks for it */
} KvmCapReq;

#define CAP(c, req) \
    { \
#c, c, req \
    }
static const KvmCapReq kvm_caps[] = {
    CAP(KVM_CAP_USER_MEMORY, true),    CAP(KVM_CAP_NR_MEMSLOTS, true),
    CAP(KVM_CAP_READONLY_MEM, true),   CAP(KVM_CAP_COALESCED_MMIO, true),
    CAP(KVM_CAP_IOEVENTFD, true),      CAP(KVM_CAP_IRQFD, true),
    CAP(KVM_CAP_IMMEDIATE_EXIT, true), CAP(KVM_CAP_IRQCHIP, false),
    CAP(KVM_CAP_PIT2, false),
};
#undef CAP

int kvm_ioctl(int fd, unsigned long req, void *arg)
{
    int r;
    do {
        r = ioctl(fd, req, arg);
    } while (r < 0 && (errno == EINTR || errno == EAGAIN));
    return r < 0 ? -errno : r;
}

void kvm_vm_error(KvmVm *vm, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", buf);
    if (!vm)
        return;
    pthread_mutex_lock(&vm->err_lock);
    memcpy(vm->last_error, buf, sizeof(buf));
    pthread_mutex_unlock(&vm->err_lock);
    STAT_ADD(vm, errors, 1);
}

/*
 * Opens the device, checks the API version, creates a VM and checks on it
 * the required capabilities, plus KVM_CAP_IRQCHIP / KVM_CAP_PIT2 when
 * want_irqchip / want_pit.  On success returns the /dev/kvm fd and hands
 * over the VM fd in *vm_fd_out (closed if vm_fd_out is NULL); on failure
 * writes a reason to why and returns -errno.
 */
static int kvm_open_checked(const char *path, bool want_irqchip, bool want_pit, char *why,
                            size_t whylen, int *vm_fd_out)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(why, whylen, "%s: %s", path, strerror(e));
        return -e;
    }
    int v = ioctl(fd, KVM_GET_API_VERSION, 0);
    if (v != KVM_API_VERSION) {
        snprintf(why, whylen, "%s: KVM API version %d, need %d", path, v, KVM_API_VERSION);
        close(fd);
        return -ENOTSUP;
    }
    int vm_fd;
    do {
        vm_fd = ioctl(fd, KVM_CREATE_VM, 0);
    } while (vm_fd < 0 && errno == EINTR);
    if (vm_fd < 0) {
        int e = errno;
        snprintf(why, whylen, "%s: KVM_CREATE_VM: %s", path, strerror(e));
        close(fd);
        return -e;
    }
    for (size_t i = 0; i < sizeof(kvm_caps) / sizeof(kvm_caps[0]); i++) {
        const KvmCapReq *c = &kvm_caps[i];
        bool need = c->required || (c->cap == KVM_CAP_IRQCHIP && want_irqchip) ||
                    (c->cap == KVM_CAP_PIT2 && want_pit);
        if (!need)
            continue;
        if (ioctl(vm_fd, KVM_CHECK_EXTENSION, c->cap) <= 0) {
            snprintf(why, whylen, "%s: not supported by %s", c->name, path);
            close(vm_fd);
            close(fd);
            return -ENOTSUP;
        }
    }
    if (vm_fd_out)
        *vm_fd_out = vm_fd;
    else
        close(vm_fd);
    return fd;
}

/* The fds of the last successful probe, kept for the next kvm_vm_create of
 * /dev/kvm in the same process: creating and destroying a throw-away VM
 * costs 0.6-4 ms (the destroy waits for the kernel), a restore's whole
 * budget.  A forked child (--daemonize) does not reuse them: a VM belongs to
 * the process that created it (vmm/daemon.h). */
static pthread_mutex_t probe_lock = PTHREAD_MUTEX_INITIALIZER;
static int probe_kvm_fd = -1, probe_vm_fd = -1;
static pid_t probe_pid;

static void probe_drop_locked(void)
{
    if (probe_vm_fd >= 0)
        close(probe_vm_fd);
    if (probe_kvm_fd >= 0)
        close(probe_kvm_fd);
    probe_vm_fd = probe_kvm_fd = -1;
}

/* Takes the probe's fds if this process made them; 0 or -1 (none). */
static int probe_take(int *kvm_fd, int *vm_fd)
{
    int r = -1;
    pthread_mutex_lock(&probe_lock);
    if (probe_kvm_fd >= 0 && probe_pid == getpid()) {
        *kvm_fd = probe_kvm_fd;
        *vm_fd = probe_vm_fd;
        probe_kvm_fd = probe_vm_fd = -1;
        r = 0;
    } else {
        probe_drop_locked();
    }
    pthread_mutex_unlock(&probe_lock);
    return r;
}

const char *kvm_probe(void)
{
    static __thread char why[256];
    int vm_fd;
    int fd = kvm_open_checked("/dev/kvm", true, true, why, sizeof(why), &vm_fd);
    if (fd < 0)
        return why;
    pthread_mutex_lock(&probe_lock);
    probe_drop_locked();
    probe_kvm_fd = fd;
    probe_vm_fd = vm_fd;
    probe_pid = getpid();
    pthread_mutex_unlock(&probe_lock);
    return NULL;
}

int kvm_vm_create(const KvmVmConfig *cfg_in, KvmVm **out)
{
    KvmVmConfig cfg = cfg_in ? *cfg_in : KVM_VM_CONFIG_DEFAULT;
    const char *path = cfg.dev_path ? cfg.dev_path : "/dev/kvm";
    char why[256];
    int vm_fd = -1, r;

    if (cfg.pit && !cfg.irqchip) {
        fprintf(stderr, "KVM_CREATE_PIT2: the PIT needs the in-kernel irqchip (irqchip=true)\n");
        return -EINVAL;
    }
    int kvm_fd = -1;
    /* The probe checked every capability, the irqchip's and the PIT's too. */
    if (cfg.dev_path || probe_take(&kvm_fd, &vm_fd) < 0)
        kvm_fd = kvm_open_checked(path, cfg.irqchip, cfg.pit, why, sizeof(why), &vm_fd);
    if (kvm_fd < 0) {
        fprintf(stderr, "%s\n", why);
        return kvm_fd;
    }
    kvm_kick_init();
    if (cfg.cpuid_prefetch)
        kvm_cpuid_prefetch(kvm_fd); /* for the vCPUs, while the caller sets up memory */

    KvmVm *vm = calloc(1, sizeof(*vm));
    if (!vm) {
        fprintf(stderr, "kvm: out of memory allocating the VM\n");
        close(vm_fd);
        close(kvm_fd);
        return -ENOMEM;
    }
    vm->kvm_fd = kvm_fd;
    vm->vm_fd = vm_fd;
    vm->cfg = cfg;
    vm->cfg.dev_path = NULL; /* not kept: the caller's string */
    pthread_mutex_init(&vm->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&vm->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&vm->err_lock, NULL);
    pthread_mutex_init(&vm->irq_lock, NULL);
    pthread_mutex_init(&vm->irqchip_lock, NULL);
    pthread_mutex_init(&vm->dirty_lock, NULL);
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&vm->ring_lock, &ma);
    pthread_mutexattr_destroy(&ma);
    vm->end.vcpu = -1;
    kvm_listener_init(vm, &vm->mem_listener, false);
    kvm_listener_init(vm, &vm->io_listener, true);

    r = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (r < (int)sizeof(struct kvm_run)) {
        kvm_vm_error(vm, "%s: KVM_GET_VCPU_MMAP_SIZE: %s", path,
                     r < 0 ? strerror(errno) : "too small");
        r = r < 0 ? -errno : -EINVAL;
        goto fail;
    }
    vm->vcpu_mmap_size = (size_t)r;

    int nslots = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_MEMSLOTS);
    if (nslots <= 0)
        nslots = 32;
    if (nslots > 32764)
        nslots = 32764;
    vm->max_slots = (unsigned)nslots;
    if (cfg.max_slots && cfg.max_slots < vm->max_slots)
        vm->max_slots = cfg.max_slots;
    vm->slots = calloc(vm->max_slots, sizeof(*vm->slots));
    if (!vm->slots) {
        kvm_vm_error(vm, "kvm: out of memory allocating %u slots", vm->max_slots);
        r = -ENOMEM;
        goto fail;
    }
    int mv = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
    if (mv <= 0)
        mv = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
    vm->max_vcpus = mv > 0 ? (unsigned)mv : 1;
    vm->coalesced_pio = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_COALESCED_PIO) > 0;
    vm->any_length_ioeventfd = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IOEVENTFD_ANY_LENGTH) > 0;

    /* The dirty ring is chosen now, before any vCPU (KVM refuses it after). */
    if (cfg.dirty_ring != KVM_DIRTY_RING_OFF) {
        r = kvm_dirty_ring_enable(vm, cfg.dirty_ring);
        if (r < 0)
            goto fail;
    }
    /* manual protect is a bitmap mode: the ring re-protects on reset */
    if (cfg.manual_dirty_log && !vm->dirty_ring) {
        int m = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2);
        if (m > 0 && (m & KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE)) {
            struct kvm_enable_cap ec = { .cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 };
            ec.args[0] = KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE;
            r = kvm_ioctl(vm_fd, KVM_ENABLE_CAP, &ec);
            if (r < 0) {
                kvm_vm_error(vm, "KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2: enable: %s", strerror(-r));
                goto fail;
            }
            vm->manual_dirty = true;
        }
    }

    if (ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SET_TSS_ADDR) > 0) {
        r = kvm_ioctl(vm_fd, KVM_SET_TSS_ADDR, (void *)KVM_TSS_ADDR);
        if (r < 0) {
            kvm_vm_error(vm, "KVM_SET_TSS_ADDR 0x%lx: %s", KVM_TSS_ADDR, strerror(-r));
            goto fail;
        }
    }

    r = kvm_irq_init(vm);
    if (r < 0)
        goto fail;

    *out = vm;
    return 0;

fail:
    kvm_vm_destroy(vm);
    return r;
}

int kvm_vm_attach_memory(KvmVm *vm, MemoryContext *ctx, AddressSpace *memory_as,
                         AddressSpace *io_as)
{
    if (!vm || !ctx || !memory_as) {
        fprintf(stderr, "kvm_vm_attach_memory: a VM, a memory context and a memory "
                        "address space are required\n");
        return -EINVAL;
    }
    if (vm->memory_as) {
        kvm_vm_error(vm, "kvm_vm_attach_memory: memory already attached");
        return -EALREADY;
    }
    vm->ctx = ctx;
    vm->memory_as = memory_as;
    vm->io_as = io_as;
    vm->mem_listener.registered = true;
    memory_listener_register(&vm->mem_listener.ml, memory_as);
    if (io_as) {
        vm->io_listener.registered = true;
        memory_listener_register(&vm->io_listener.ml, io_as);
    }
    /* RAM has its slots now: the irqchip's bus changes no longer make a
     * slot update wait (kvm_irq_init). */
    return kvm_vm_realize_irqchip(vm);
}

void kvm_vm_destroy(KvmVm *vm)
{
    if (!vm)
        return;
    if (vm->nvcpus) {
        kvm_vm_request_end(vm, KVM_END_REQUESTED, 0, "VM destroyed");
        kvm_vcpu_join_all(vm);
    }
    /* Drain what the guest left in the ring while the devices still exist. */
    if (vm->ring && vm->memory_as)
        kvm_drain_coalesced(vm);
    vm->destroying = true;
    if (vm->mem_listener.registered)
        memory_listener_unregister(&vm->mem_listener.ml);
    if (vm->io_listener.registered)
        memory_listener_unregister(&vm->io_listener.ml);
    kvm_listener_fini(&vm->mem_listener);
    kvm_listener_fini(&vm->io_listener);
    kvm_irq_fini(vm);
    for (unsigned i = 0; i < vm->nvcpus; i++)
        kvm_vcpu_destroy(vm->vcpus[i]);
    free(vm->vcpus);
    free(vm->slots);
    if (vm->vm_fd >= 0)
        close(vm->vm_fd);
    if (vm->kvm_fd >= 0)
        close(vm->kvm_fd);
    pthread_mutex_destroy(&vm->ring_lock);
    pthread_mutex_destroy(&vm->irq_lock);
    pthread_mutex_destroy(&vm->irqchip_lock);
    pthread_mutex_destroy(&vm->dirty_lock);
    free(vm->dirty_buf);
    pthread_mutex_destroy(&vm->err_lock);
    pthread_cond_destroy(&vm->cond);
    pthread_mutex_destroy(&vm->lock);
    free(vm);
}

int kvm_vm_fd(const KvmVm *vm)
{
    return vm->vm_fd;
}

int kvm_vm_kvm_fd(const KvmVm *vm)
{
    return vm->kvm_fd;
}

int kvm_vm_check_extension(const KvmVm *vm, long cap)
{
    int r = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, cap);
    return r > 0 ? r : 0;
}

void kvm_vm_set_thread_hook(KvmVm *vm, KvmThreadHook fn, void *opaque)
{
    vm->thread_hook = fn;
    vm->thread_hook_opaque = opaque;
}

const char *kvm_vm_last_error(const KvmVm *vm)
{
    return vm->last_error;
}

static int slot_info_cmp(const void *a, const void *b)
{
    const KvmSlotInfo *x = a, *y = b;
    return x->gpa < y->gpa ? -1 : x->gpa > y->gpa;
}

size_t kvm_vm_get_slots(KvmVm *vm, KvmSlotInfo *out, size_t max)
{
    size_t used = vm->slots_used;
    if (!out || !max || !used)
        return used;
    KvmSlotInfo *all = calloc(used, sizeof(*all));
    if (!all)
        return used;
    size_t n = 0;
    for (unsigned i = 0; i < vm->max_slots && n < used; i++) {
        KvmSlot *s = &vm->slots[i];
        if (!s->used)
            continue;
        KvmSlotInfo *o = &all[n++];
        o->slot = i;
        o->gpa = s->gpa;
        o->size = s->size;
        o->hva = s->hva;
        o->flags = s->flags;
        snprintf(o->name, sizeof(o->name), "%s", s->name);
    }
    qsort(all, n, sizeof(*all), slot_info_cmp);
    memcpy(out, all, (n < max ? n : max) * sizeof(*all));
    free(all);
    return used;
}

uint64_t kvm_vm_slot_ioctl_count(const KvmVm *vm)
{
    return __atomic_load_n(&vm->stats.slot_ioctls, __ATOMIC_RELAXED);
}

unsigned kvm_vm_max_slots(const KvmVm *vm)
{
    return vm->max_slots;
}

void kvm_vm_get_stats(KvmVm *vm, KvmVmStats *out)
{
    const uint64_t *src = (const uint64_t *)&vm->stats;
    uint64_t *dst = (uint64_t *)out;
    for (size_t i = 0; i < sizeof(KvmVmStats) / sizeof(uint64_t); i++)
        dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

void kvm_vm_flush_coalesced(KvmVm *vm)
{
    kvm_drain_coalesced(vm);
}

const char *kvm_end_reason_str(KvmEndReason reason)
{
    switch (reason) {
    case KVM_END_NONE:
        return "running";
    case KVM_END_HLT:
        return "hlt";
    case KVM_END_SHUTDOWN:
        return "shutdown (triple fault)";
    case KVM_END_SYSTEM_RESET:
        return "system event reset";
    case KVM_END_SYSTEM_SHUTDOWN:
        return "system event shutdown";
    case KVM_END_REQUESTED:
        return "requested";
    case KVM_END_ERROR:
        return "error";
    }
    return "unknown";
}
