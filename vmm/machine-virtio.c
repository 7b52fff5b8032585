/* SPDX-License-Identifier: MIT */
/*
 * The machine's virtio devices (--disk, --net, --rng): created in
 * machine_create's "virtio devices" hook, placed with
 * machine_add_virtio_mmio, served by one device event-loop thread (queue
 * notifications arrive there through ioeventfds, never on a vCPU).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/evloop.h"
#include "devices/virtio-blk.h"
#include "devices/virtio-net.h"
#include "devices/virtio-rng.h"
#include "vmm/machine.h"

struct MachineVirtioDevs {
    Evloop *loop;
    VirtioBlk *blk[VM_MAX_DISKS];
    unsigned nblk;
    VirtioNet *net[VM_MAX_NETS];
    unsigned nnet;
    VirtioRng *rng;
};

/* Places t's region in the next slot and wires its (level) interrupt. */
static int place(Machine *m, VirtioMmio *t)
{
    IrqLine irq;
    uint64_t base;
    unsigned gsi;
    if (machine_add_virtio_mmio(m, virtio_mmio_region(t), &irq, &base, &gsi) < 0)
        return -1;
    /* The slots are level triggered (DSDT): a resampling irqfd served by the
     * device event loop, or KVM_IRQ_LINE where none can be had. */
    virtio_mmio_connect_irq(t, &irq, base, true);
    return 0;
}

int machine_add_virtio_devices(Machine *m)
{
    const VmConfig *cfg = m->cfg;
    char err[512];
    if (!cfg->ndisks && !cfg->nnets && !cfg->rng)
        return 0;
    MachineVirtioDevs *v = calloc(1, sizeof(*v));
    if (!v || !(v->loop = evloop_new())) {
        if (!v || errno == ENOMEM)
            fprintf(stderr, "strata: virtio devices: out of memory\n");
        else    /* refused, not run unrestricted: see devices/uring.h */
            fprintf(stderr, "strata: virtio devices: the device event loop needs a restricted "
                    "io_uring (Linux 5.11 or later): %s\n", strerror(errno));
        free(v);
        return -1;
    }
    m->virtio_devs = v;
    for (unsigned i = 0; i < cfg->ndisks; i++) {
        VirtioBlk *b = calloc(1, sizeof(*b));
        if (!b) {
            fprintf(stderr, "strata: disk path=%s: out of memory\n", cfg->disks[i].path);
            return -1;
        }
        if (virtio_blk_init(b, m->ctx, m->memory_as, v->loop, NULL, 0, cfg->disks[i].path,
                            cfg->disks[i].readonly, err, sizeof(err)) < 0) {
            fprintf(stderr, "strata: %s\n", err);
            free(b);
            return -1;
        }
        v->blk[v->nblk++] = b;
        if (place(m, &b->t) < 0)
            return -1;
    }
    for (unsigned i = 0; i < cfg->nnets; i++) {
        int fd = virtio_net_open_tap(cfg->nets[i].tap, err, sizeof(err));
        if (fd < 0) {
            fprintf(stderr, "strata: %s\n", err);
            return -1;
        }
        VirtioNet *n = calloc(1, sizeof(*n));
        if (!n) {
            fprintf(stderr, "strata: net tap=%s: out of memory\n", cfg->nets[i].tap);
            return -1;
        }
        if (virtio_net_init(n, m->ctx, m->memory_as, v->loop, NULL, 0, fd, cfg->nets[i].mac,
                            err, sizeof(err)) < 0) {
            fprintf(stderr, "strata: net tap=%s: %s\n", cfg->nets[i].tap, err);
            free(n);
            return -1;
        }
        v->net[v->nnet++] = n;
        if (place(m, &n->t) < 0)
            return -1;
    }
    if (cfg->rng) {
        VirtioRng *r = calloc(1, sizeof(*r));
        if (!r || virtio_rng_init(r, m->ctx, m->memory_as, v->loop, NULL, 0) < 0) {
            fprintf(stderr, "strata: virtio-rng: cannot create the device\n");
            free(r);
            return -1;
        }
        v->rng = r;
        if (place(m, &r->t) < 0)
            return -1;
    }
    return 0;
}

static int io_thread_hook(void *opaque)
{
    return sandbox_enter(opaque, SANDBOX_ROLE_IO);
}

int machine_virtio_start(Machine *m)
{
    MachineVirtioDevs *v = m->virtio_devs;
    if (!v)
        return 0;
    if (m->sandbox)
        evloop_set_thread_hook(v->loop, io_thread_hook, (void *)m->sandbox);
    int r = evloop_start(v->loop, "strata-io");
    if (r < 0) {
        fprintf(stderr, "strata: virtio devices: event loop thread: %s\n", strerror(-r));
        return -1;
    }
    return 0;
}

void machine_virtio_reset(Machine *m)
{
    MachineVirtioDevs *v = m->virtio_devs;
    if (!v)
        return;
    for (unsigned i = 0; i < v->nblk; i++)
        virtio_mmio_reset(&v->blk[i]->t);
    for (unsigned i = 0; i < v->nnet; i++)
        virtio_mmio_reset(&v->net[i]->t);
    if (v->rng)
        virtio_mmio_reset(&v->rng->t);
}

unsigned machine_virtio_ndevs(const Machine *m)
{
    const MachineVirtioDevs *v = m->virtio_devs;
    return v ? v->nblk + v->nnet + (v->rng ? 1u : 0u) : 0;
}

VirtioMmio *machine_virtio_transport(Machine *m, unsigned i)
{
    MachineVirtioDevs *v = m->virtio_devs;
    if (!v)
        return NULL;
    if (i < v->nblk)
        return &v->blk[i]->t;
    i -= v->nblk;
    if (i < v->nnet)
        return &v->net[i]->t;
    i -= v->nnet;
    return i == 0 && v->rng ? &v->rng->t : NULL;
}

void machine_virtio_pause(Machine *m)
{
    if (m->virtio_devs)
        evloop_pause(m->virtio_devs->loop);
}

void machine_virtio_resume(Machine *m)
{
    if (m->virtio_devs)
        evloop_resume(m->virtio_devs->loop);
}

void machine_virtio_halt(Machine *m)
{
    if (m->virtio_devs)
        evloop_halt(m->virtio_devs->loop);
}

void machine_virtio_stop(Machine *m)
{
    if (m->virtio_devs)
        evloop_stop(m->virtio_devs->loop);
}

void machine_virtio_free(Machine *m)
{
    MachineVirtioDevs *v = m->virtio_devs;
    if (!v)
        return;
    evloop_stop(v->loop);
    for (unsigned i = 0; i < v->nblk; i++) {
        virtio_blk_destroy(v->blk[i]);
        free(v->blk[i]);
    }
    for (unsigned i = 0; i < v->nnet; i++) {
        virtio_net_destroy(v->net[i]);
        free(v->net[i]);
    }
    if (v->rng) {
        virtio_rng_destroy(v->rng);
        free(v->rng);
    }
    evloop_free(v->loop);
    free(v);
    m->virtio_devs = NULL;
}
