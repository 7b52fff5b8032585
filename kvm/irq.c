/* SPDX-License-Identifier: MIT */
/* In-kernel irqchip and PIT, irqfds, and device-facing lines. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "kvm/kvm_internal.h"

static int need_irqchip(KvmVm *vm, const char *what)
{
    if (vm->irqchip)
        return kvm_vm_realize_irqchip(vm);
    kvm_vm_error(vm, "%s: the VM has no in-kernel irqchip (create it with irqchip=true)", what);
    return -ENODEV;
}

/* Assigns eventfd `fd` as an irqfd for `gsi` (a write pulses the GSI);
 * resample_fd >= 0 makes it level-triggered with that resample eventfd. */
static int irqfd_assign(KvmVm *vm, int fd, unsigned gsi, int resample_fd)
{
    int r = need_irqchip(vm, "KVM_IRQFD");
    if (r < 0)
        return r;
    struct kvm_irqfd f = { .fd = (uint32_t)fd, .gsi = gsi };
    if (resample_fd >= 0) {
        f.flags = KVM_IRQFD_FLAG_RESAMPLE;
        f.resamplefd = (uint32_t)resample_fd;
    }
    r = kvm_ioctl(vm->vm_fd, KVM_IRQFD, &f);
    if (r < 0) {
        kvm_vm_error(vm, "KVM_IRQFD fd %d gsi %u: %s", fd, gsi, strerror(-r));
        return r;
    }
    STAT_ADD(vm, irqfds, 1);
    return 0;
}

/* Removes an irqfd made by irqfd_assign. */
static int irqfd_deassign(KvmVm *vm, int fd, unsigned gsi)
{
    struct kvm_irqfd f = { .fd = (uint32_t)fd, .gsi = gsi, .flags = KVM_IRQFD_FLAG_DEASSIGN };
    int r = kvm_ioctl(vm->vm_fd, KVM_IRQFD, &f);
    if (r < 0) {
        kvm_vm_error(vm, "KVM_IRQFD deassign fd %d gsi %u: %s", fd, gsi, strerror(-r));
        return r;
    }
    STAT_SUB(vm, irqfds, 1);
    return 0;
}

/* Records the configuration; the chip itself comes later (kvm_vm_realize_irqchip):
 * KVM makes the first KVM_SET_USER_MEMORY_REGION after an I/O bus change
 * (the irqchip and PIT register devices on the buses) wait 4-10 ms for a
 * grace period, while one made before costs 0.2 ms for 256 MiB (measured on
 * a PVM 6.18 host; docs/snapshot.md).  So guest RAM gets its slots first. */
int kvm_irq_init(KvmVm *vm)
{
    vm->irqchip = vm->cfg.irqchip;
    vm->pit = vm->cfg.irqchip && vm->cfg.pit;
    return 0;
}

/* Creates the in-kernel irqchip and PIT if configured and not yet made.
 * Called once guest RAM is attached, and by whatever needs the chip first
 * (a vCPU, an irqfd, a line): idempotent, thread-safe. */
int kvm_vm_realize_irqchip(KvmVm *vm)
{
    if (!vm->irqchip || __atomic_load_n(&vm->irqchip_made, __ATOMIC_ACQUIRE))
        return 0;
    pthread_mutex_lock(&vm->irqchip_lock);
    int r = vm->irqchip_err;
    if (vm->irqchip_made || r < 0)
        goto out;
    r = kvm_ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, NULL);
    if (r < 0) {
        kvm_vm_error(vm, "KVM_CREATE_IRQCHIP: %s", strerror(-r));
        goto fail;
    }
    if (vm->pit) {
        struct kvm_pit_config pc = { .flags = KVM_PIT_SPEAKER_DUMMY };
        r = kvm_ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pc);
        if (r < 0) {
            kvm_vm_error(vm, "KVM_CREATE_PIT2: %s", strerror(-r));
            goto fail;
        }
    }
    __atomic_store_n(&vm->irqchip_made, true, __ATOMIC_RELEASE);
    goto out;
fail:
    vm->irqchip_err = r;
out:
    pthread_mutex_unlock(&vm->irqchip_lock);
    return r < 0 ? r : 0;
}

void kvm_irq_fini(KvmVm *vm)
{
    KvmIrqLineCtx *c = vm->lines;
    while (c) {
        KvmIrqLineCtx *n = c->next;
        if (c->eventfd >= 0) {
            if (vm->vm_fd >= 0)
                irqfd_deassign(vm, c->eventfd, c->gsi);
            close(c->eventfd);
        }
        if (c->level_fd >= 0) {
            if (vm->vm_fd >= 0)
                irqfd_deassign(vm, c->level_fd, c->gsi);
            close(c->level_fd);
            close(c->resample_fd);
        }
        free(c);
        c = n;
    }
    vm->lines = NULL;
}

bool kvm_vm_has_irqchip(const KvmVm *vm)
{
    return vm->irqchip;
}

/* ---- device-facing lines --------------------------------------------- */

static void line_set(void *opaque, int level)
{
    KvmIrqLineCtx *c = opaque;
    struct kvm_irq_level il = { .irq = c->gsi, .level = level ? 1 : 0 };
    int r = kvm_vm_realize_irqchip(c->vm);
    if (r == 0)
        r = kvm_ioctl(c->vm->vm_fd, KVM_IRQ_LINE, &il);
    if (r < 0)
        kvm_vm_error(c->vm, "KVM_IRQ_LINE gsi %u level %d: %s", c->gsi, level, strerror(-r));
}

static void line_set_none(void *opaque, int level)
{
    (void)opaque;
    (void)level;
}

static int line_eventfd(void *opaque)
{
    KvmIrqLineCtx *c = opaque;
    KvmVm *vm = c->vm;
    pthread_mutex_lock(&vm->irq_lock);
    if (c->eventfd < 0 && vm->irqchip) {
        int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (fd < 0) {
            kvm_vm_error(vm, "eventfd for gsi %u: %s", c->gsi, strerror(errno));
        } else if (irqfd_assign(vm, fd, c->gsi, -1) < 0) {
            close(fd);
        } else {
            c->eventfd = fd;
        }
    }
    int fd = c->eventfd;
    pthread_mutex_unlock(&vm->irq_lock);
    return fd;
}

static int line_eventfd_none(void *opaque)
{
    (void)opaque;
    return -1;
}

static int line_level_eventfd(void *opaque, int *resample_fd)
{
    KvmIrqLineCtx *c = opaque;
    KvmVm *vm = c->vm;
    pthread_mutex_lock(&vm->irq_lock);
    if (c->level_fd < 0 && vm->irqchip) {
        int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        int rfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (fd < 0 || rfd < 0) {
            kvm_vm_error(vm, "eventfd for gsi %u: %s", c->gsi, strerror(errno));
        } else if (irqfd_assign(vm, fd, c->gsi, rfd) == 0) {
            c->level_fd = fd;
            c->resample_fd = rfd;
            fd = rfd = -1;
        }
        if (fd >= 0)
            close(fd);
        if (rfd >= 0)
            close(rfd);
    }
    int fd = c->level_fd;
    *resample_fd = c->resample_fd;
    pthread_mutex_unlock(&vm->irq_lock);
    return fd;
}

static int line_level_eventfd_none(void *opaque, int *resample_fd)
{
    (void)opaque;
    *resample_fd = -1;
    return -1;
}

int kvm_vm_irq_line(KvmVm *vm, unsigned gsi, IrqLine *line)
{
    KvmIrqLineCtx *c = calloc(1, sizeof(*c));
    if (!c) {
        kvm_vm_error(vm, "irq line gsi %u: out of memory", gsi);
        return -ENOMEM;
    }
    c->vm = vm;
    c->gsi = gsi;
    c->eventfd = -1;
    c->level_fd = -1;
    c->resample_fd = -1;
    pthread_mutex_lock(&vm->irq_lock);
    c->next = vm->lines;
    vm->lines = c;
    pthread_mutex_unlock(&vm->irq_lock);
    line->opaque = c;
    line->set = vm->irqchip ? line_set : line_set_none;
    line->eventfd = vm->irqchip ? line_eventfd : line_eventfd_none;
    line->level_eventfd = vm->irqchip ? line_level_eventfd : line_level_eventfd_none;
    return 0;
}
