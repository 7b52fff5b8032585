/* SPDX-License-Identifier: MIT */
/* Notification-counting model (see vnotify.h). */
#include "tests/virtio/vnotify.h"

#include <stdlib.h>
#include <string.h>

#include "devices/evloop.h"
#include "devices/virtio-rng.h"
#include "tests/virtio/vtest.h"

#define VN_TABLES (VT_BUFS + 0x40000) /* indirect tables, 32 bytes per slot */

static unsigned next(uint64_t *x)
{
    *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
    return (unsigned)(*x >> 33);
}

/* The driver adds one request (8 device-writable bytes). */
static void add_request(Vt *vt, const VnParams *p)
{
    uint16_t slot = (uint16_t)(vt->q[0].avail_idx % p->queue_num);
    uint64_t buf = VT_BUFS + 64ull * slot;
    if (p->indirect) {
        VtBuf b[2] = { { buf, 4, true }, { buf + 4, 4, true } };
        vt_add_indirect(vt, 0, VN_TABLES + 32ull * slot, b, 2);
    } else {
        vt_add(vt, 0, &(VtBuf){ buf, 8, true }, 1);
    }
}

/* The driver's interrupt handler: takes every used entry, then re-arms
 * (with EVENT_IDX, used_event = the next entry it has not seen) and looks
 * again, as Linux's virtqueue_enable_cb does; returns the entries taken. */
static unsigned handle_irq(Vt *vt, const VnParams *p)
{
    vt_w32(vt, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_INT_USED);
    unsigned n = 0;
    for (;;) {
        uint32_t id, len;
        while (vt_used(vt, 0, &id, &len))
            n++;
        if (!p->event_idx)
            break;
        vt_set_used_event(vt, 0, vt->q[0].used_seen);
        uint16_t idx;
        memcpy(&idx, vt_ptr(vt, vt->q[0].used + 2), 2);
        if (idx == vt->q[0].used_seen)
            break;
    }
    return n;
}

int vn_run(const VnParams *p, VnResult *r)
{
    memset(r, 0, sizeof(*r));
    if (p->queue_num == 0 || (p->queue_num & (p->queue_num - 1)) || p->queue_num > 256 ||
        p->max_batch == 0)
        return -1;
    Evloop *loop = evloop_new();
    if (!loop)
        return -1;
    Vt *vt = calloc(1, sizeof(*vt));
    VirtioRng *rng = calloc(1, sizeof(*rng));
    if (!vt || !rng) {
        free(vt);
        free(rng);
        evloop_free(loop);
        return -1;
    }
    vt_setup(vt);
    int ret = -1;
    if (virtio_rng_init(rng, &(VirtioEnv){ vt->ctx, vt->as, loop }) < 0) {
        vt_free(vt);
        goto out;
    }
    virtio_mmio_connect_irq(&rng->t, &vt->irq, VT_BASE);
    vt_map(vt, virtio_mmio_region(&rng->t));
    vt_bringup(vt,
               (p->event_idx ? VIRTIO_F_EVENT_IDX : 0) | (p->indirect ? VIRTIO_F_INDIRECT_DESC : 0),
               1, p->queue_num);

    uint64_t x = p->seed | 1;
    unsigned submitted = 0, inflight = 0;
    bool kick_pending = false;
    for (uint64_t step = 0; r->completed < p->requests; step++) {
        if (step > 1000ull * p->requests + 1000)
            goto done; /* no progress: a bug in the model or the device */
        if (submitted < p->requests && inflight < p->queue_num) {
            unsigned want = 1 + next(&x) % p->max_batch;
            for (unsigned i = 0; i < want && submitted < p->requests && inflight < p->queue_num;
                 i++) {
                add_request(vt, p);
                submitted++;
                inflight++;
            }
            if (vt_kick_prepare(vt, 0)) {
                vt_kick(vt, 0);
                kick_pending = true;
            }
        }
        if (kick_pending && next(&x) % 100 < p->p_device) {
            if (evloop_run_once(loop, 1000) < 1)
                goto done;
            kick_pending = false;
            r->device_runs++;
        }
        if ((vt_r32(vt, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_INT_USED) &&
            next(&x) % 100 < p->p_irq) {
            unsigned n = handle_irq(vt, p);
            r->completed += n;
            inflight -= n;
            r->handler_runs++;
        }
    }
    ret = 0;
done:;
    VirtioQueueStats st = virtio_mmio_queue_stats(&rng->t, 0);
    r->kicks = st.kicks;
    r->interrupts = st.interrupts;
    r->suppressed = st.suppressed;
    r->broken = vt_r32(vt, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET;
    vt_teardown(vt);
    virtio_rng_destroy(rng);
    vt_free(vt);
out:
    free(rng);
    free(vt);
    evloop_free(loop);
    return r->broken ? -1 : ret;
}
