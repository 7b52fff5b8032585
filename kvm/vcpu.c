/* SPDX-License-Identifier: MIT */
/* vCPUs: creation, register and MSR access, CPUID, the PVH entry state,
 * and the signal that kicks a vCPU thread out of KVM_RUN (the run loop,
 * pause/resume and the VM's end are in run.c). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "kvm/kvm_internal.h"

static pthread_once_t kick_once = PTHREAD_ONCE_INIT;

int kvm_kick_signal(void)
{
    return SIGRTMIN + 2;
}

static void kick_handler(int sig)
{
    (void)sig; /* only there to make KVM_RUN return -EINTR */
}

static void kick_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = kick_handler;
    sigemptyset(&sa.sa_mask);
    /* KVM_RUN returns -EINTR on a pending signal whatever the flags (it is
     * never restarted); SA_RESTART spares device code on vCPU threads. */
    sa.sa_flags = SA_RESTART;
    sigaction(kvm_kick_signal(), &sa, NULL);
}

void kvm_kick_init(void)
{
    pthread_once(&kick_once, kick_install);
}

/* ---- creation --------------------------------------------------------- */

int kvm_vcpu_create(KvmVm *vm, unsigned index, KvmVcpu **out)
{
    if (index >= vm->max_vcpus) {
        kvm_vm_error(vm, "KVM_CREATE_VCPU %u: index beyond KVM_CAP_MAX_VCPUS (%u)", index,
                     vm->max_vcpus);
        return -EINVAL;
    }
    if (kvm_vm_vcpu(vm, index)) {
        kvm_vm_error(vm, "KVM_CREATE_VCPU %u: vCPU exists already", index);
        return -EEXIST;
    }
    pthread_mutex_lock(&vm->lock);
    bool started = vm->started;
    pthread_mutex_unlock(&vm->lock);
    if (started) {
        kvm_vm_error(vm, "KVM_CREATE_VCPU %u: the VM was started already", index);
        return -EBUSY;
    }
    int rc = kvm_vm_realize_irqchip(vm); /* the LAPICs need the chip first */
    if (rc < 0)
        return rc;
    KvmVcpu *v = calloc(1, sizeof(*v));
    if (!v) {
        kvm_vm_error(vm, "KVM_CREATE_VCPU %u: out of memory", index);
        return -ENOMEM;
    }
    v->vm = vm;
    v->index = index;
    v->fd = kvm_ioctl(vm->vm_fd, KVM_CREATE_VCPU, (void *)(uintptr_t)index);
    if (v->fd < 0) {
        int r = v->fd;
        kvm_vm_error(vm, "KVM_CREATE_VCPU %u: %s", index, strerror(-r));
        free(v);
        return r;
    }
    v->mmap_size = vm->vcpu_mmap_size;
    void *p = mmap(NULL, v->mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
    if (p == MAP_FAILED) {
        int r = -errno;
        kvm_vm_error(vm, "vCPU %u: mmap of kvm_run (%zu bytes): %s", index, v->mmap_size,
                     strerror(-r));
        close(v->fd);
        free(v);
        return r;
    }
    v->run = p;
    if (vm->dirty_ring) {
        size_t bytes = (size_t)vm->dirty_ring * sizeof(struct kvm_dirty_gfn);
        void *g = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd,
                       (off_t)KVM_DIRTY_LOG_PAGE_OFFSET * KVM_PAGE_SIZE);
        if (g == MAP_FAILED) {
            int r = -errno;
            kvm_vm_error(vm, "vCPU %u: mmap of its dirty ring (%zu bytes): %s", index, bytes,
                         strerror(-r));
            munmap(p, v->mmap_size);
            close(v->fd);
            free(v);
            return r;
        }
        v->dirty_gfns = g;
    }
    size_t ring_off = (size_t)KVM_COALESCED_MMIO_PAGE_OFFSET * KVM_PAGE_SIZE;
    pthread_mutex_lock(&vm->ring_lock);
    if (!vm->ring && ring_off + KVM_PAGE_SIZE <= v->mmap_size) {
        vm->ring = (struct kvm_coalesced_mmio_ring *)((uint8_t *)p + ring_off);
        vm->ring_max = (unsigned)((KVM_PAGE_SIZE - sizeof(struct kvm_coalesced_mmio_ring)) /
                                  sizeof(struct kvm_coalesced_mmio));
    }
    pthread_mutex_unlock(&vm->ring_lock);

    pthread_mutex_lock(&vm->lock);
    if (vm->nvcpus == vm->vcpus_cap) {
        unsigned ncap = vm->vcpus_cap ? vm->vcpus_cap * 2 : 4;
        KvmVcpu **nv = realloc(vm->vcpus, ncap * sizeof(*nv));
        if (!nv) {
            pthread_mutex_unlock(&vm->lock);
            kvm_vm_error(vm, "KVM_CREATE_VCPU %u: out of memory", index);
            kvm_vcpu_destroy(v);
            return -ENOMEM;
        }
        vm->vcpus = nv;
        vm->vcpus_cap = ncap;
    }
    vm->vcpus[vm->nvcpus++] = v;
    pthread_mutex_unlock(&vm->lock);
    if (out)
        *out = v;
    return 0;
}

void kvm_vcpu_destroy(KvmVcpu *v)
{
    if (!v)
        return;
    KvmVm *vm = v->vm;
    if (v->run) {
        pthread_mutex_lock(&vm->ring_lock);
        uint8_t *base = (uint8_t *)v->run;
        if ((uint8_t *)vm->ring >= base && (uint8_t *)vm->ring < base + v->mmap_size)
            vm->ring = NULL;
        pthread_mutex_unlock(&vm->ring_lock);
        munmap(v->run, v->mmap_size);
    }
    if (v->dirty_gfns)
        munmap(v->dirty_gfns, (size_t)vm->dirty_ring * sizeof(struct kvm_dirty_gfn));
    if (v->fd >= 0)
        close(v->fd);
    free(v);
}

KvmVcpu *kvm_vm_vcpu(const KvmVm *vm, unsigned index)
{
    KvmVm *m = (KvmVm *)vm;
    KvmVcpu *found = NULL;
    pthread_mutex_lock(&m->lock);
    for (unsigned i = 0; i < m->nvcpus; i++)
        if (m->vcpus[i]->index == index)
            found = m->vcpus[i];
    pthread_mutex_unlock(&m->lock);
    return found;
}

unsigned kvm_vm_nr_vcpus(const KvmVm *vm)
{
    return vm->nvcpus;
}

unsigned kvm_vcpu_index(const KvmVcpu *vcpu)
{
    return vcpu->index;
}

int kvm_vcpu_fd(const KvmVcpu *vcpu)
{
    return vcpu->fd;
}

struct kvm_run *kvm_vcpu_run_struct(KvmVcpu *vcpu)
{
    return vcpu->run;
}

KvmVm *kvm_vcpu_vm(const KvmVcpu *vcpu)
{
    return vcpu->vm;
}

/* ---- registers ------------------------------------------------------- */

static int vcpu_ioctl(KvmVcpu *v, unsigned long req, void *arg, const char *what)
{
    int r = kvm_ioctl(v->fd, req, arg);
    if (r < 0)
        kvm_vm_error(v->vm, "vCPU %u: %s: %s", v->index, what, strerror(-r));
    return r < 0 ? r : 0;
}

int kvm_vcpu_get_regs(KvmVcpu *vcpu, struct kvm_regs *regs)
{
    return vcpu_ioctl(vcpu, KVM_GET_REGS, regs, "KVM_GET_REGS");
}

int kvm_vcpu_set_regs(KvmVcpu *vcpu, const struct kvm_regs *regs)
{
    return vcpu_ioctl(vcpu, KVM_SET_REGS, (void *)regs, "KVM_SET_REGS");
}

int kvm_vcpu_get_sregs(KvmVcpu *vcpu, struct kvm_sregs *sregs)
{
    return vcpu_ioctl(vcpu, KVM_GET_SREGS, sregs, "KVM_GET_SREGS");
}

int kvm_vcpu_set_sregs(KvmVcpu *vcpu, const struct kvm_sregs *sregs)
{
    return vcpu_ioctl(vcpu, KVM_SET_SREGS, (void *)sregs, "KVM_SET_SREGS");
}

/* struct kvm_msrs with room for one entry (its flexible array) */
typedef union {
    struct kvm_msrs hdr;
    uint8_t raw[sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)];
} OneMsr;

int kvm_vcpu_get_msr(KvmVcpu *vcpu, uint32_t index, uint64_t *value)
{
    OneMsr m;
    memset(&m, 0, sizeof(m));
    m.hdr.nmsrs = 1;
    m.hdr.entries[0].index = index;
    int r = kvm_ioctl(vcpu->fd, KVM_GET_MSRS, &m);
    if (r != 1) {
        kvm_vm_error(vcpu->vm, "vCPU %u: KVM_GET_MSRS 0x%x: %s", vcpu->index, index,
                     r < 0 ? strerror(-r) : "not supported");
        return r < 0 ? r : -EINVAL;
    }
    *value = m.hdr.entries[0].data;
    return 0;
}

int kvm_vcpu_set_msr(KvmVcpu *vcpu, uint32_t index, uint64_t value)
{
    OneMsr m;
    memset(&m, 0, sizeof(m));
    m.hdr.nmsrs = 1;
    m.hdr.entries[0].index = index;
    m.hdr.entries[0].data = value;
    int r = kvm_ioctl(vcpu->fd, KVM_SET_MSRS, &m);
    if (r != 1) {
        kvm_vm_error(vcpu->vm, "vCPU %u: KVM_SET_MSRS 0x%x: %s", vcpu->index, index,
                     r < 0 ? strerror(-r) : "not supported");
        return r < 0 ? r : -EINVAL;
    }
    return 0;
}

/* ---- CPUID ------------------------------------------------------------ */

/* KVM_GET_SUPPORTED_CPUID costs 0.4 ms on a PVM host (the kernel runs
 * CPUID for every leaf, and each traps): kvm_vm_create has it fetched on a
 * thread while the caller goes on setting up memory and the irqchip, and
 * the first kvm_vm_get_supported_cpuid of the same process takes that.
 * The thread has every signal blocked, uses its own dup of the fd and ends
 * by itself; a forked child (pid differs) ignores it. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool pending, done;
    pid_t pid;
    int fd;
    struct kvm_cpuid2 *c; /* NULL: the fetch failed */
} prefetch = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER, .fd = -1 };

static int fetch_cpuid(int kvm_fd, struct kvm_cpuid2 **out)
{
    /* 256 is the kernel's KVM_MAX_CPUID_ENTRIES: one call, not a retry after E2BIG
     * (on PVM each call costs milliseconds) */
    for (unsigned nent = 256; nent <= 4096; nent *= 2) {
        struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + nent * sizeof(struct kvm_cpuid_entry2));
        if (!c)
            return -ENOMEM;
        c->nent = nent;
        int r = kvm_ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c);
        if (r >= 0) {
            *out = c;
            return 0;
        }
        free(c);
        if (r != -E2BIG)
            return r;
    }
    return -E2BIG;
}

static void *prefetch_main(void *arg)
{
    (void)arg;
    struct kvm_cpuid2 *c = NULL;
    if (fetch_cpuid(prefetch.fd, &c) < 0)
        c = NULL; /* kvm_vm_get_supported_cpuid asks again and reports */
    pthread_mutex_lock(&prefetch.lock);
    close(prefetch.fd);
    prefetch.fd = -1;
    prefetch.c = c;
    prefetch.done = true;
    pthread_cond_broadcast(&prefetch.cond);
    pthread_mutex_unlock(&prefetch.lock);
    return NULL;
}

void kvm_cpuid_prefetch(int kvm_fd)
{
    if (__atomic_load_n(&prefetch.pid, __ATOMIC_ACQUIRE) != getpid()) {
        /* first here, or a forked child: the parent's state is not its own */
        pthread_mutex_init(&prefetch.lock, NULL);
        pthread_cond_init(&prefetch.cond, NULL);
        prefetch.pending = false;
        prefetch.c = NULL;
    }
    pthread_mutex_lock(&prefetch.lock);
    if (prefetch.pending && prefetch.pid == getpid()) { /* one at a time */
        pthread_mutex_unlock(&prefetch.lock);
        return;
    }
    prefetch.fd = fcntl(kvm_fd, F_DUPFD_CLOEXEC, 0);
    prefetch.pending = prefetch.fd >= 0;
    prefetch.done = false;
    __atomic_store_n(&prefetch.pid, getpid(), __ATOMIC_RELEASE);
    if (prefetch.pending) {
        pthread_attr_t a;
        pthread_t t;
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &a, prefetch_main, NULL) != 0) {
            close(prefetch.fd);
            prefetch.fd = -1;
            prefetch.pending = false;
        }
        pthread_attr_destroy(&a);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    pthread_mutex_unlock(&prefetch.lock);
}

/* The prefetched table if this process has one coming (waits for it),
 * else NULL (none, or its fetch failed). */
static struct kvm_cpuid2 *prefetch_take(void)
{
    struct kvm_cpuid2 *c = NULL;
    /* a forked child never locks: the thread that may hold the lock is not its */
    if (__atomic_load_n(&prefetch.pid, __ATOMIC_ACQUIRE) != getpid())
        return NULL;
    pthread_mutex_lock(&prefetch.lock);
    if (prefetch.pending && prefetch.pid == getpid()) {
        while (!prefetch.done)
            pthread_cond_wait(&prefetch.cond, &prefetch.lock);
        c = prefetch.c;
        prefetch.c = NULL;
        prefetch.pending = false;
    }
    pthread_mutex_unlock(&prefetch.lock);
    return c;
}

int kvm_vm_get_supported_cpuid(KvmVm *vm, struct kvm_cpuid2 **out)
{
    struct kvm_cpuid2 *c = prefetch_take();
    if (c) {
        *out = c;
        return 0;
    }
    /* no prefetch, or it failed: ask again here, and say why it fails */
    int r = fetch_cpuid(vm->kvm_fd, out);
    if (r == -ENOMEM)
        kvm_vm_error(vm, "KVM_GET_SUPPORTED_CPUID: out of memory");
    else if (r == -E2BIG)
        kvm_vm_error(vm, "KVM_GET_SUPPORTED_CPUID: more than 4096 entries");
    else if (r < 0)
        kvm_vm_error(vm, "KVM_GET_SUPPORTED_CPUID: %s", strerror(-r));
    return r;
}

int kvm_vcpu_set_cpuid(KvmVcpu *vcpu, const struct kvm_cpuid2 *cpuid)
{
    return vcpu_ioctl(vcpu, KVM_SET_CPUID2, (void *)cpuid, "KVM_SET_CPUID2");
}

int kvm_vcpu_init_cpuid(KvmVcpu *vcpu)
{
    struct kvm_cpuid2 *c;
    int r = kvm_vm_get_supported_cpuid(vcpu->vm, &c);
    if (r < 0)
        return r;
    for (unsigned i = 0; i < c->nent; i++) {
        struct kvm_cpuid_entry2 *e = &c->entries[i];
        if (e->function == 1) {
            e->ebx = (e->ebx & 0x00ffffffu) | ((vcpu->index & 0xffu) << 24);
            e->ecx |= 1u << 31; /* running under a hypervisor */
        } else if (e->function == 0xb || e->function == 0x1f) {
            e->edx = vcpu->index; /* x2APIC id */
        }
    }
    r = kvm_vcpu_set_cpuid(vcpu, c);
    free(c);
    return r;
}

/* ---- entry states ------------------------------------------------------ */

static void seg_flat(struct kvm_segment *s, uint16_t sel, uint8_t type, bool code)
{
    memset(s, 0, sizeof(*s));
    s->base = 0;
    s->limit = 0xffffffffu;
    s->selector = sel;
    s->type = type;
    s->present = 1;
    s->dpl = 0;
    s->db = 1;
    s->s = 1;
    s->l = 0;
    s->g = 1;
    (void)code;
}

int kvm_vcpu_setup_pvh(KvmVcpu *vcpu, uint64_t entry, uint64_t start_info)
{
    struct kvm_sregs sr;
    int r = kvm_vcpu_get_sregs(vcpu, &sr);
    if (r < 0)
        return r;
    seg_flat(&sr.cs, 0x10, 0xb, true);  /* execute/read, accessed */
    seg_flat(&sr.ds, 0x18, 0x3, false); /* read/write, accessed */
    sr.es = sr.fs = sr.gs = sr.ss = sr.ds;
    memset(&sr.tr, 0, sizeof(sr.tr));
    sr.tr.limit = 0x67;
    sr.tr.type = 0xb; /* 32-bit busy TSS */
    sr.tr.present = 1;
    memset(&sr.ldt, 0, sizeof(sr.ldt));
    sr.ldt.type = 0x2;
    sr.ldt.present = 1;
    sr.ldt.limit = 0xffff;
    sr.cr0 = (sr.cr0 | 0x1u /* PE */ | 0x10u /* ET */) &
             ~(0x80000000ull /* PG */ | 0x60000000ull /* CD|NW */);
    sr.cr4 = 0;
    sr.efer = 0;
    r = kvm_vcpu_set_sregs(vcpu, &sr);
    if (r < 0)
        return r;
    struct kvm_regs rg;
    memset(&rg, 0, sizeof(rg));
    rg.rip = entry;
    rg.rbx = start_info;
    rg.rflags = 2;
    return kvm_vcpu_set_regs(vcpu, &rg);
}
