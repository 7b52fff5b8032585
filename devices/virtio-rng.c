/* SPDX-License-Identifier: MIT */
/* virtio-rng (see virtio-rng.h). */
#include "devices/virtio-rng.h"

#include <errno.h>
#include <sys/random.h>

static size_t fill(void *p, size_t n)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = getrandom((uint8_t *)p + done, n - done, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        done += (size_t)r;
    }
    return done;
}

static void rng_notify(VirtioMmio *t, unsigned q)
{
    VirtioRng *d = t->dev;
    VirtQueue *vq = virtio_mmio_queue(t, q);
    bool pushed = false;
    while (vq) {
        VirtqElem *e = &d->elem;
        if (virtio_mmio_pop(t, q, vq, e) <= 0)
            break;
        size_t total = 0;
        for (unsigned i = e->out_num; i < e->out_num + e->in_num; i++) {
            size_t want = e->iov[i].iov_len;
            if (want > VIRTIO_RNG_MAX_FILL - total)
                want = VIRTIO_RNG_MAX_FILL - total;
            size_t got = fill(e->iov[i].iov_base, want);
            total += got;
            if (got < want || total >= VIRTIO_RNG_MAX_FILL)
                break;
        }
        d->bytes += total;
        virtq_push(vq, e, (uint32_t)total);
        pushed = true;
    }
    if (pushed)
        virtio_mmio_notify_used(t, q);
}

static const StateField rng_state_fields[] = {
    STATE_STRUCT(VirtioRngStateData, t, &virtio_mmio_state_table),
};
static const StateTable rng_state_table = STATE_TABLE(VirtioRngStateData, rng_state_fields);
const StateSection virtio_rng_state_section = {
    "virtio-rng",
    VIRTIO_RNG_STATE_MAGIC,
    VIRTIO_RNG_STATE_VERSION,
    &rng_state_table,
};

static int rng_save(VirtioMmio *t, uint8_t **buf, size_t *len)
{
    VirtioRngStateData st;
    return virtio_mmio_save_state(t, &virtio_rng_state_section, &st, buf, len);
}

static int rng_load(VirtioMmio *t, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    VirtioRngStateData st;
    int ret = virtio_mmio_load_state(t, &virtio_rng_state_section, buf, len, &st, err, errlen);
    if (ret == 0)
        virtio_mmio_install_state(t, &st.t);
    return ret;
}

static const VirtioDevOps rng_ops = {
    .name = "virtio-rng",
    .device_id = VIRTIO_ID_RNG,
    .queue_notify = rng_notify,
    .save = rng_save,
    .load = rng_load,
};

int virtio_rng_init(VirtioRng *d, const VirtioEnv *env)
{
    d->bytes = 0;
    return virtio_mmio_init(&d->t, env, &rng_ops, d, 1, 0, NULL, 0);
}

void virtio_rng_destroy(VirtioRng *d)
{
    virtio_mmio_destroy(&d->t);
}

VIRTIO_DEVICE_OPS_DEFINE(virtio_rng, VirtioRng);
