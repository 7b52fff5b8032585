/* SPDX-License-Identifier: MIT */
/* The machine's virtio devices and their event loop (see machine-virtio.h). */
#include "vmm/machine-virtio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/evloop.h"
#include "devices/virtio-balloon.h"
#include "devices/virtio-blk.h"
#include "devices/virtio-net.h"
#include "devices/virtio-rng.h"
#include "vmm/log.h"
#include "devices/virtio-vsock.h"
#include "vmm/unix-listen.h"

/* What the virtio devices share: their event loop.  The devices themselves
 * are in the board's device list. */
struct VirtioDevs {
    Evloop *loop;
};

static unsigned count_disks(const VmConfig *cfg)
{
    return cfg->ndisks;
}
static unsigned count_nets(const VmConfig *cfg)
{
    return cfg->nnets;
}
static unsigned count_rng(const VmConfig *cfg)
{
    return cfg->rng ? 1 : 0;
}
static unsigned count_balloon(const VmConfig *cfg)
{
    return cfg->balloon.on ? 1 : 0;
}

static unsigned count_vsock(const VmConfig *cfg)
{
    return cfg->vsock.cid ? 1 : 0;
}

/* Makes device i of one kind from cfg on env and hands it to place; 0, or
 * -1 after printing why. */
typedef int (*VirtioMakeFn)(const VmConfig *cfg, unsigned i, const VirtioEnv *env,
                            VirtioPlaceFn place, void *board);

static int make_disk(const VmConfig *cfg, unsigned i, const VirtioEnv *env, VirtioPlaceFn place,
                     void *board)
{
    char err[512];
    VirtioBlk *b = calloc(1, sizeof(*b));
    if (!b) {
        log_msg(LOG_ERROR, "disk path=%s: out of memory", cfg->disks[i].path);
        return -1;
    }
    if (virtio_blk_init(b, env, cfg->disks[i].path, cfg->disks[i].readonly,
                        cfg->disks[i].num_queues ? cfg->disks[i].num_queues : 1, err,
                        sizeof(err)) < 0) {
        log_msg(LOG_ERROR, "%s", err);
        free(b);
        return -1;
    }
    virtio_mmio_withdraw_features(&b->t,
                                  (cfg->disks[i].no_event_idx ? VIRTIO_F_EVENT_IDX : 0) |
                                      (cfg->disks[i].no_indirect ? VIRTIO_F_INDIRECT_DESC : 0));
    if (ratelimit_active_cfg(&cfg->disks[i].rl) &&
        virtio_blk_set_rate_limit(b, &cfg->disks[i].rl) < 0) {
        log_msg(LOG_ERROR, "disk path=%s: a rate limit needs the device event loop",
                cfg->disks[i].path);
        virtio_blk_destroy(b);
        free(b);
        return -1;
    }
    return place(board, &b->t, &virtio_blk_device_ops, b);
}

static int make_net(const VmConfig *cfg, unsigned i, const VirtioEnv *env, VirtioPlaceFn place,
                    void *board)
{
    char err[512];
    int fd = virtio_net_open_tap(cfg->nets[i].tap, err, sizeof(err));
    if (fd < 0) {
        log_msg(LOG_ERROR, "%s", err);
        return -1;
    }
    VirtioNet *n = calloc(1, sizeof(*n));
    if (!n) {
        log_msg(LOG_ERROR, "net tap=%s: out of memory", cfg->nets[i].tap);
        return -1;
    }
    if (virtio_net_init(n, env, fd, cfg->nets[i].mac, err, sizeof(err)) < 0) {
        log_msg(LOG_ERROR, "net tap=%s: %s", cfg->nets[i].tap, err);
        free(n);
        return -1;
    }
    if (ratelimit_active_cfg(&cfg->nets[i].rl) &&
        virtio_net_set_rate_limit(n, &cfg->nets[i].rl) < 0) {
        log_msg(LOG_ERROR, "net tap=%s: a rate limit needs the device event loop",
                cfg->nets[i].tap);
        virtio_net_destroy(n);
        free(n);
        return -1;
    }
    return place(board, &n->t, &virtio_net_device_ops, n);
}

static int make_rng(const VmConfig *cfg, unsigned i, const VirtioEnv *env, VirtioPlaceFn place,
                    void *board)
{
    VirtioRng *r = calloc(1, sizeof(*r));
    if (!r || virtio_rng_init(r, env) < 0) {
        log_msg(LOG_ERROR, "virtio-rng: cannot create the device");
        free(r);
        return -1;
    }
    return place(board, &r->t, &virtio_rng_device_ops, r);
}

static int make_balloon(const VmConfig *cfg, unsigned i, const VirtioEnv *env, VirtioPlaceFn place,
                        void *board)
{
    const VirtioBalloonOptions o = {
        .deflate_on_oom = cfg->balloon.deflate_on_oom,
        .free_page_reporting = cfg->balloon.free_page_reporting,
        .stats_interval_s = cfg->balloon.stats_interval,
    };
    VirtioBalloon *b = calloc(1, sizeof(*b));
    int r = b ? virtio_balloon_init(b, env, &o) : -ENOMEM;
    if (r < 0) {
        log_msg(LOG_ERROR, "--balloon: cannot create the device: %s", strerror(-r));
        free(b);
        return -1;
    }
    return place(board, &b->t, &virtio_balloon_device_ops, b);
}

/* The vsock device listens on uds=PATH (made here, on the main thread,
 * before any seccomp filter; the device owns the socket). */
static int make_vsock(const VmConfig *cfg, unsigned i, const VirtioEnv *env, VirtioPlaceFn place,
                      void *board)
{
    (void)i;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", cfg->vsock.uds);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || unix_bind_listen(fd, &sa, 16) < 0) {
        fprintf(stderr, "strata: vsock uds=%s: %s\n", cfg->vsock.uds, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    VirtioVsock *v = calloc(1, sizeof(*v));
    int r = v ? virtio_vsock_init(v, env, cfg->vsock.cid, cfg->vsock.uds, fd) : -ENOMEM;
    if (!v)
        close(fd);
    if (r < 0) {
        fprintf(stderr, "strata: --vsock: cannot create the device: %s\n", strerror(-r));
        free(v);
        return -1;
    }
    return place(board, &v->t, &virtio_vsock_device_ops, v);
}

/*
 * The virtio devices, one line each: how many cfg asks for and how to make
 * one.  Created in this order, so placed in this order: the slots, the
 * device list and the migration stream's device order follow it (append
 * new kinds at the end).
 */
static const struct {
    unsigned (*count)(const VmConfig *cfg);
    VirtioMakeFn make;
} kinds[] = {
    { count_disks, make_disk },      { count_nets, make_net },    { count_rng, make_rng },
    { count_balloon, make_balloon }, { count_vsock, make_vsock },
};

int virtio_devs_create(VirtioDevs **out, const VmConfig *cfg, MemoryContext *ctx, AddressSpace *as,
                       VirtioPlaceFn place, void *board)
{
    *out = NULL;
    unsigned total = 0;
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
        total += kinds[k].count(cfg);
    if (!total)
        return 0;
    VirtioDevs *v = calloc(1, sizeof(*v));
    if (!v || !(v->loop = evloop_new())) {
        if (!v || errno == ENOMEM)
            log_msg(LOG_ERROR, "virtio devices: out of memory");
        else /* refused, not run unrestricted: see devices/uring.h */
            log_msg(LOG_ERROR,
                    "virtio devices: the device event loop needs a restricted "
                    "io_uring (Linux 5.11 or later): %s",
                    strerror(errno));
        free(v);
        return -1;
    }
    *out = v;
    const VirtioEnv env = { ctx, as, v->loop };
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
        for (unsigned i = 0; i < kinds[k].count(cfg); i++)
            if (kinds[k].make(cfg, i, &env, place, board) < 0)
                return -1;
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
        log_msg(LOG_ERROR, "virtio devices: event loop thread: %s", strerror(-r));
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
