/* SPDX-License-Identifier: MIT */
/* The migration tests' fault-injecting proxy (see mig_proxy.h). */
#include "mig_proxy.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "mig_harness.h"

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static bool write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* One direction's handover message being collected or held. */
typedef struct Msg {
    int id; /* PX_READY, PX_GO, PX_ANSWER; -1: none expected now */
    uint8_t b[4];
    unsigned have;
    uint64_t release_ms; /* held until then (0: not held) */
} Msg;

typedef enum { OK, CLOSE } Step;

/* A whole message arrived: pass, hold, drop or cut it. */
static Step apply(Proxy *p, Msg *m, int out)
{
    uint32_t tag = (uint32_t)m->b[0] | (uint32_t)m->b[1] << 8 | (uint32_t)m->b[2] << 16 |
                   (uint32_t)m->b[3] << 24;
    __atomic_store_n(&p->tags[m->id], tag, __ATOMIC_RELEASE);
    __atomic_store_n(&p->seen[m->id], 1, __ATOMIC_RELEASE);
    ProxyFault f = p->at[m->id];
    switch (f.action) {
    case PX_CUT:
        return CLOSE;
    case PX_DROP:
        m->have = 0;
        return OK;
    case PX_DELAY:
        m->release_ms = mono_ms() + f.delay_ms;
        return OK;
    case PX_PASS:
        break;
    }
    m->have = 0;
    return write_all(out, m->b, 4) ? OK : CLOSE;
}

static void *proxy_main(void *arg)
{
    Proxy *p = arg;
    int a = accept(p->lfd, NULL, NULL);
    if (a < 0)
        return NULL;
    int b = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    memcpy(sa.sun_path, p->target, strnlen(p->target, sizeof(sa.sun_path) - 1));
    if (connect(b, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        p->connect_errno = errno;
        close(a);
        close(b);
        __atomic_store_n(&p->done, 1, __ATOMIC_RELEASE);
        return NULL;
    }
    static __thread uint8_t buf[1 << 16];
    /* source -> destination: GO once READY went through; destination ->
     * source: READY (or ERR!) first, then the answer to GO */
    Msg up = { .id = -1 }, down = { .id = PX_READY };
    bool ready_passed = false;
    bool b_open = true; /* after a dropped answer the source side stays open */
    for (;;) {
        uint64_t now = mono_ms();
        int timeout = 60000;
        Msg *held[2] = { &up, &down };
        int outs[2] = { b, a };
        bool closing = false;
        for (int i = 0; i < 2; i++) {
            Msg *m = held[i];
            if (!m->release_ms)
                continue;
            if (now >= m->release_ms) {
                m->release_ms = 0;
                m->have = 0;
                if (!write_all(outs[i], m->b, 4))
                    closing = true;
                if (m == &down && m->id == PX_READY)
                    ready_passed = true;
                if (m == &down)
                    m->id = m->id == PX_READY ? PX_ANSWER : -1;
                else
                    m->id = -1;
            } else if ((int)(m->release_ms - now) < timeout) {
                timeout = (int)(m->release_ms - now);
            }
        }
        if (closing)
            break;
        if (ready_passed && up.id < 0 && !__atomic_load_n(&p->seen[PX_GO], __ATOMIC_ACQUIRE))
            up.id = PX_GO;
        /* a held direction is not read (its order is kept) */
        struct pollfd f[2] = { { .fd = up.release_ms ? -1 : a, .events = POLLIN },
                               { .fd = down.release_ms || !b_open ? -1 : b, .events = POLLIN } };
        int n = poll(f, 2, timeout);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        if (n == 0) {
            if (timeout == 60000)
                break; /* a minute without a byte: give up */
            continue;
        }
        if (f[0].revents) {
            size_t want = sizeof(buf);
            if (up.id >= 0)
                want = 4 - up.have;
            else if (p->cut_after && p->cut_after - p->forwarded < want)
                want = (size_t)(p->cut_after - p->forwarded);
            ssize_t r = want ? read(a, up.id >= 0 ? up.b + up.have : buf, want) : 0;
            if (r <= 0)
                break;
            if (up.id >= 0) {
                up.have += (unsigned)r;
                p->forwarded += (uint64_t)r;
                if (up.have == 4) {
                    if (apply(p, &up, b) == CLOSE)
                        break;
                    if (!up.release_ms)
                        up.id = -1;
                }
            } else {
                if (p->flip_at >= p->forwarded && p->flip_at < p->forwarded + (uint64_t)r)
                    buf[p->flip_at - p->forwarded] ^= 0x5a;
                if (!write_all(b, buf, (size_t)r)) {
                    /* the destination closed: pass on its last words (a refusal) */
                    ssize_t m;
                    while ((m = recv(b, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
                        if (!write_all(a, buf, (size_t)m))
                            break;
                    break;
                }
                p->forwarded += (uint64_t)r;
                if (p->cut_after && p->forwarded >= p->cut_after)
                    break;
            }
        }
        if (f[1].revents) {
            size_t want = down.id >= 0 ? 4 - down.have : sizeof(buf);
            ssize_t r = read(b, down.id >= 0 ? down.b + down.have : buf, want);
            if (r <= 0 && p->at[PX_ANSWER].action == PX_DROP &&
                __atomic_load_n(&p->seen[PX_ANSWER], __ATOMIC_ACQUIRE)) {
                /* the destination hung up after its lost answer: the
                 * source must not learn anything from that either */
                b_open = false;
                continue;
            }
            if (r <= 0)
                break;
            if (down.id < 0) {
                if (!write_all(a, buf, (size_t)r))
                    break;
                continue;
            }
            down.have += (unsigned)r;
            if (down.have < 4)
                continue;
            bool is_ready = down.id == PX_READY && !memcmp(down.b, "RDY!", 4);
            if (down.id == PX_READY && !is_ready) {
                /* a refusal instead of READY: everything passes */
                down.id = -1;
                down.have = 0;
                if (!write_all(a, down.b, 4))
                    break;
                continue;
            }
            if (apply(p, &down, a) == CLOSE)
                break;
            if (!down.release_ms) {
                if (down.id == PX_READY)
                    ready_passed = p->at[PX_READY].action == PX_PASS;
                down.id = down.id == PX_READY ? PX_ANSWER : -1;
            }
        }
    }
    close(a);
    close(b);
    __atomic_store_n(&p->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

void proxy_init(Proxy *p)
{
    memset(p, 0, sizeof(*p));
    p->flip_at = UINT64_MAX;
    p->lfd = -1;
}

void proxy_start(Proxy *p, const char *name, const char *target)
{
    snprintf(p->path, sizeof(p->path), "%s/%s.sock", tmpdir, name);
    size_t tl = strnlen(target, sizeof(p->target) - 1);
    memcpy(p->target, target, tl);
    p->target[tl] = 0;
    p->forwarded = 0;
    p->connect_errno = 0;
    p->done = 0;
    memset(p->seen, 0, sizeof(p->seen));
    memset(p->tags, 0, sizeof(p->tags));
    p->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    memcpy(sa.sun_path, p->path, strnlen(p->path, sizeof(sa.sun_path) - 1));
    unlink(p->path);
    CHECK(bind(p->lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(p->lfd, 1) == 0,
          "proxy %s: %s", p->path, strerror(errno));
    CHECK(pthread_create(&p->thread, NULL, proxy_main, p) == 0, "pthread_create");
}

void proxy_stop(Proxy *p)
{
    shutdown(p->lfd, SHUT_RDWR);
    pthread_join(p->thread, NULL);
    close(p->lfd);
    p->lfd = -1;
    unlink(p->path);
}

bool proxy_wait_seen(Proxy *p, int m, unsigned timeout_ms)
{
    for (unsigned t = 0; t <= timeout_ms; t += 10) {
        if (__atomic_load_n(&p->seen[m], __ATOMIC_ACQUIRE))
            return true;
        msleep(10);
    }
    return false;
}
