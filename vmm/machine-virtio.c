/* SPDX-License-Identifier: MIT */
/* The machine's virtio devices and their event loop (see machine-virtio.h). */
#include "vmm/machine-virtio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/evloop.h"
#include "devices/virtio-blk.h"
#include "devices/virtio-net.h"
#include "devices/virtio-rng.h"

/* What the virtio devices share: their event loop.  The devices themselves
 * are in the board's device list. */
struct VirtioDevs {
    Evloop *loop;
};

int virtio_devs_create(VirtioDevs **out, const VmConfig *cfg, MemoryContext *ctx, AddressSpace *as,
                       VirtioPlaceFn place, void *board)
{
    char err[512];
    *out = NULL;
    if (!cfg->ndisks && !cfg->nnets && !cfg->rng)
        return 0;
    VirtioDevs *v = calloc(1, sizeof(*v));
    if (!v || !(v->loop = evloop_new())) {
        if (!v || errno == ENOMEM)
            fprintf(stderr, "strata: virtio devices: out of memory\n");
        else /* refused, not run unrestricted: see devices/uring.h */
            fprintf(stderr,
                    "strata: virtio devices: the device event loop needs a restricted "
                    "io_uring (Linux 5.11 or later): %s\n",
                    strerror(errno));
        free(v);
        return -1;
    }
    *out = v;
    const VirtioEnv env = { ctx, as, v->loop };
    for (unsigned i = 0; i < cfg->ndisks; i++) {
        VirtioBlk *b = calloc(1, sizeof(*b));
        if (!b) {
            fprintf(stderr, "strata: disk path=%s: out of memory\n", cfg->disks[i].path);
            return -1;
        }
        if (virtio_blk_init(b, &env, cfg->disks[i].path, cfg->disks[i].readonly, err, sizeof(err)) <
            0) {
            fprintf(stderr, "strata: %s\n", err);
            free(b);
            return -1;
        }
        if (place(board, &b->t, &virtio_blk_device_ops, b) < 0)
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
        if (place(board, &n->t, &virtio_net_device_ops, n) < 0)
            return -1;
    }
    if (cfg->rng) {
        VirtioRng *r = calloc(1, sizeof(*r));
        if (!r || virtio_rng_init(r, &env) < 0) {
            fprintf(stderr, "strata: virtio-rng: cannot create the device\n");
            free(r);
            return -1;
        }
        if (place(board, &r->t, &virtio_rng_device_ops, r) < 0)
            return -1;
    }
    return 0;
}

int virtio_devs_start(VirtioDevs *v, int (*enter)(void *opaque), void *opaque)
{
    if (!v)
        return 0;
    if (enter)
        evloop_set_thread_hook(v->loop, enter, opaque);
    int r = evloop_start(v->loop, "strata-io");
    if (r < 0) {
        fprintf(stderr, "strata: virtio devices: event loop thread: %s\n", strerror(-r));
        return -1;
    }
    return 0;
}

void virtio_devs_pause(VirtioDevs *v)
{
    if (v)
        evloop_pause(v->loop);
}

void virtio_devs_resume(VirtioDevs *v)
{
    if (v)
        evloop_resume(v->loop);
}

void virtio_devs_halt(VirtioDevs *v)
{
    if (v)
        evloop_halt(v->loop);
}

void virtio_devs_stop(VirtioDevs *v)
{
    if (v)
        evloop_stop(v->loop);
}

void virtio_devs_free(VirtioDevs *v)
{
    if (!v)
        return;
    evloop_stop(v->loop);
    evloop_free(v->loop);
    free(v);
}
