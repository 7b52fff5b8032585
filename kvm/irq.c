/* SPDX-License-Identifier: MIT */
/* In-kernel irqchip and PIT, GSI routing, irqfds, and device-facing lines. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "kvm/kvm_internal.h"

#define KVM_IOAPIC_PINS 24

static int routes_push(KvmVm *vm, const struct kvm_irq_routing_entry *e)
{
    if (vm->nroutes == vm->routes_cap) {
        size_t ncap = vm->routes_cap ? vm->routes_cap * 2 : 64;
        void *p = realloc(vm->routes, ncap * sizeof(*vm->routes));
        if (!p)
            return -ENOMEM;
        vm->routes = p;
        vm->routes_cap = ncap;
    }
    vm->routes[vm->nroutes++] = *e;
    return 0;
}

static void route_irqchip(struct kvm_irq_routing_entry *e, unsigned gsi, unsigned chip,
                          unsigned pin)
{
    memset(e, 0, sizeof(*e));
    e->gsi = gsi;
    e->type = KVM_IRQ_ROUTING_IRQCHIP;
    e->u.irqchip.irqchip = chip;
    e->u.irqchip.pin = pin;
}

/* The table the kernel installs with KVM_CREATE_IRQCHIP: GSIs 0-15 go to
 * both the PICs and the IOAPIC, 16-23 to the IOAPIC only.  We keep a copy
 * because KVM_SET_GSI_ROUTING replaces the whole table. */
static int routes_default(KvmVm *vm)
{
    struct kvm_irq_routing_entry e;
    for (unsigned gsi = 0; gsi < KVM_IOAPIC_PINS; gsi++) {
        if (gsi < 16) {
            route_irqchip(&e, gsi, gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE,
                          gsi % 8);
            if (routes_push(vm, &e) < 0)
                return -ENOMEM;
        }
        route_irqchip(&e, gsi, KVM_IRQCHIP_IOAPIC, gsi);
        if (routes_push(vm, &e) < 0)
            return -ENOMEM;
    }
    return 0;
}

/* Sends the whole table to KVM; called with irq_lock held. */
static int routes_commit(KvmVm *vm)
{
    size_t bytes = sizeof(struct kvm_irq_routing) + vm->nroutes * sizeof(*vm->routes);
    struct kvm_irq_routing *t = calloc(1, bytes);
    if (!t) {
        kvm_vm_error(vm, "KVM_SET_GSI_ROUTING: out of memory");
        return -ENOMEM;
    }
    t->nr = (uint32_t)vm->nroutes;
    memcpy(t->entries, vm->routes, vm->nroutes * sizeof(*vm->routes));
    int r = kvm_ioctl(vm->vm_fd, KVM_SET_GSI_ROUTING, t);
    free(t);
    if (r < 0)
        kvm_vm_error(vm, "KVM_SET_GSI_ROUTING (%zu routes): %s", vm->nroutes, strerror(-r));
    return r < 0 ? r : 0;
}

int kvm_irq_init(KvmVm *vm)
{
    int r;
    if (!vm->cfg.irqchip)
        return 0;
    r = kvm_ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, NULL);
    if (r < 0) {
        kvm_vm_error(vm, "KVM_CREATE_IRQCHIP: %s", strerror(-r));
        return r;
    }
    vm->irqchip = true;
    if (vm->cfg.pit) {
        struct kvm_pit_config pc = { .flags = KVM_PIT_SPEAKER_DUMMY };
        r = kvm_ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pc);
        if (r < 0) {
            kvm_vm_error(vm, "KVM_CREATE_PIT2: %s", strerror(-r));
            return r;
        }
        vm->pit = true;
    }
    if (routes_default(vm) < 0) {
        kvm_vm_error(vm, "GSI routing: out of memory");
        return -ENOMEM;
    }
    return 0;
}

void kvm_irq_fini(KvmVm *vm)
{
    KvmIrqLineCtx *c = vm->lines;
    while (c) {
        KvmIrqLineCtx *n = c->next;
        if (c->eventfd >= 0) {
            if (vm->vm_fd >= 0)
                kvm_vm_irqfd_deassign(vm, c->eventfd, c->gsi);
            close(c->eventfd);
        }
        if (c->level_fd >= 0) {
            if (vm->vm_fd >= 0)
                kvm_vm_irqfd_deassign(vm, c->level_fd, c->gsi);
            close(c->level_fd);
            close(c->resample_fd);
        }
        free(c);
        c = n;
    }
    vm->lines = NULL;
    free(vm->routes);
    vm->routes = NULL;
    vm->nroutes = vm->routes_cap = 0;
}

bool kvm_vm_has_irqchip(const KvmVm *vm)
{
    return vm->irqchip;
}

static int need_irqchip(KvmVm *vm, const char *what)
{
    if (vm->irqchip)
        return 0;
    kvm_vm_error(vm, "%s: the VM has no in-kernel irqchip (create it with irqchip=true)", what);
    return -ENODEV;
}

int kvm_vm_set_irq(KvmVm *vm, unsigned gsi, int level)
{
    int r = need_irqchip(vm, "KVM_IRQ_LINE");
    if (r < 0)
        return r;
    struct kvm_irq_level il = { .irq = gsi, .level = level ? 1 : 0 };
    r = kvm_ioctl(vm->vm_fd, KVM_IRQ_LINE, &il);
    if (r < 0)
        kvm_vm_error(vm, "KVM_IRQ_LINE gsi %u level %d: %s", gsi, level, strerror(-r));
    return r < 0 ? r : 0;
}

int kvm_vm_irqfd_assign(KvmVm *vm, int fd, unsigned gsi, int resample_fd)
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

int kvm_vm_irqfd_deassign(KvmVm *vm, int fd, unsigned gsi)
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

static struct kvm_irq_routing_entry *msi_route_find(KvmVm *vm, unsigned gsi)
{
    for (size_t i = 0; i < vm->nroutes; i++)
        if (vm->routes[i].gsi == gsi && vm->routes[i].type == KVM_IRQ_ROUTING_MSI)
            return &vm->routes[i];
    return NULL;
}

static void msi_fill(struct kvm_irq_routing_entry *e, unsigned gsi, uint64_t address,
                     uint32_t data)
{
    memset(e, 0, sizeof(*e));
    e->gsi = gsi;
    e->type = KVM_IRQ_ROUTING_MSI;
    e->u.msi.address_lo = (uint32_t)address;
    e->u.msi.address_hi = (uint32_t)(address >> 32);
    e->u.msi.data = data;
}

int kvm_vm_add_msi_route(KvmVm *vm, uint64_t address, uint32_t data)
{
    int r = need_irqchip(vm, "KVM_SET_GSI_ROUTING");
    if (r < 0)
        return r;
    pthread_mutex_lock(&vm->irq_lock);
    unsigned gsi = KVM_IOAPIC_PINS;
    for (;;) {     /* lowest free GSI above the IOAPIC pins */
        bool used = false;
        for (size_t i = 0; i < vm->nroutes && !used; i++)
            used = vm->routes[i].gsi == gsi;
        if (!used)
            break;
        gsi++;
    }
    struct kvm_irq_routing_entry e;
    msi_fill(&e, gsi, address, data);
    r = routes_push(vm, &e);
    if (r < 0) {
        kvm_vm_error(vm, "KVM_SET_GSI_ROUTING: out of memory");
    } else {
        r = routes_commit(vm);
        if (r < 0)
            vm->nroutes--;
    }
    pthread_mutex_unlock(&vm->irq_lock);
    return r < 0 ? r : (int)gsi;
}

int kvm_vm_update_msi_route(KvmVm *vm, unsigned gsi, uint64_t address, uint32_t data)
{
    pthread_mutex_lock(&vm->irq_lock);
    struct kvm_irq_routing_entry *e = msi_route_find(vm, gsi);
    int r;
    if (!e) {
        kvm_vm_error(vm, "KVM_SET_GSI_ROUTING: GSI %u is not an MSI route", gsi);
        r = -ENOENT;
    } else {
        struct kvm_irq_routing_entry old = *e;
        msi_fill(e, gsi, address, data);
        r = routes_commit(vm);
        if (r < 0)
            *e = old;
    }
    pthread_mutex_unlock(&vm->irq_lock);
    return r;
}

int kvm_vm_del_msi_route(KvmVm *vm, unsigned gsi)
{
    pthread_mutex_lock(&vm->irq_lock);
    struct kvm_irq_routing_entry *e = msi_route_find(vm, gsi);
    int r;
    if (!e) {
        kvm_vm_error(vm, "KVM_SET_GSI_ROUTING: GSI %u is not an MSI route", gsi);
        r = -ENOENT;
    } else {
        *e = vm->routes[--vm->nroutes];
        r = routes_commit(vm);
    }
    pthread_mutex_unlock(&vm->irq_lock);
    return r;
}

int kvm_vm_signal_msi(KvmVm *vm, uint64_t address, uint32_t data)
{
    int r = need_irqchip(vm, "KVM_SIGNAL_MSI");
    if (r < 0)
        return r;
    struct kvm_msi m = { .address_lo = (uint32_t)address, .address_hi = (uint32_t)(address >> 32),
                         .data = data };
    r = kvm_ioctl(vm->vm_fd, KVM_SIGNAL_MSI, &m);
    if (r < 0) {
        kvm_vm_error(vm, "KVM_SIGNAL_MSI 0x%llx/0x%x: %s", (unsigned long long)address, data,
                     strerror(-r));
        return r;
    }
    return 0;   /* >0: delivered; 0: blocked by the guest */
}

/* ---- device-facing lines --------------------------------------------- */

static void line_set(void *opaque, int level)
{
    KvmIrqLineCtx *c = opaque;
    struct kvm_irq_level il = { .irq = c->gsi, .level = level ? 1 : 0 };
    int r = kvm_ioctl(c->vm->vm_fd, KVM_IRQ_LINE, &il);
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
        } else if (kvm_vm_irqfd_assign(vm, fd, c->gsi, -1) < 0) {
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
        } else if (kvm_vm_irqfd_assign(vm, fd, c->gsi, rfd) == 0) {
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
