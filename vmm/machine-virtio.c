/* SPDX-License-Identifier: MIT */
/*
 * The machine's virtio devices (--disk, --net, --rng): created in
 * machine_create's "virtio devices" hook, placed and listed with
 * machine_add_virtio, served by one device event-loop thread (queue
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

/* What the virtio devices share on this board: their event loop.  The
 * devices themselves are in the board's device list. */
struct MachineVirtioDevs {
    Evloop *loop;
};

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
    const VirtioEnv env = { m->ctx, m->memory_as, v->loop };
    for (unsigned i = 0; i < cfg->ndisks; i++) {
        VirtioBlk *b = calloc(1, sizeof(*b));
        if (!b) {
            fprintf(stderr, "strata: disk path=%s: out of memory\n", cfg->disks[i].path);
            return -1;
        }
        if (virtio_blk_init(b, &env, cfg->disks[i].path, cfg->disks[i].readonly, err,
                            sizeof(err)) < 0) {
            fprintf(stderr, "strata: %s\n", err);
            free(b);
            return -1;
        }
        if (machine_add_virtio(m, &b->t, &virtio_blk_device_ops, b) < 0)
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
        if (virtio_net_init(n, &env, fd, cfg->nets[i].mac, err, sizeof(err)) < 0) {
            fprintf(stderr, "strata: net tap=%s: %s\n", cfg->nets[i].tap, err);
            free(n);
            return -1;
        }
        if (machine_add_virtio(m, &n->t, &virtio_net_device_ops, n) < 0)
            return -1;
    }
    if (cfg->rng) {
        VirtioRng *r = calloc(1, sizeof(*r));
        if (!r || virtio_rng_init(r, &env) < 0) {
            fprintf(stderr, "strata: virtio-rng: cannot create the device\n");
            free(r);
            return -1;
        }
        if (machine_add_virtio(m, &r->t, &virtio_rng_device_ops, r) < 0)
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
    evloop_free(v->loop);
    free(v);
    m->virtio_devs = NULL;
}
