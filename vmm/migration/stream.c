/* SPDX-License-Identifier: MIT */
/* The migration stream's framing and transport (see stream.h). */
#include "vmm/migration/stream.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "memory/state-stream.h"
#include "vmm/migration/migration.h"
#include "vmm/unix-listen.h"
#include "vmm/migration/uri.h"

#define POLL_TICK_MS 100

static int fail(MigChannel *ch, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(MigChannel *ch, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ch->err, sizeof(ch->err), fmt, ap);
    va_end(ap);
    return -1;
}

uint64_t mig_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

bool mig_page_is_zero(const void *p)
{
    const uint64_t *w = p;
    for (unsigned i = 0; i < MIG_PAGE_SIZE / 8; i += 8) {
        if (w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7])
            return false;
    }
    return true;
}

#define PAGEMAP_PRESENT (1ull << 63)
#define PAGEMAP_SWAPPED (1ull << 62)

uint64_t *mig_untouched_pages(int pagemap_fd, const void *host, uint64_t pages)
{
    if (pagemap_fd < 0)
        return NULL;
    uint64_t *bits = calloc((pages + 63) / 64 + 1, sizeof(uint64_t));
    if (!bits)
        return NULL;
    uint64_t ent[4096];
    uint64_t vpn = (uint64_t)(uintptr_t)host / MIG_PAGE_SIZE;
    for (uint64_t p = 0; p < pages;) {
        uint64_t n = pages - p < 4096 ? pages - p : 4096;
        if (pread(pagemap_fd, ent, n * 8, (off_t)((vpn + p) * 8)) != (ssize_t)(n * 8)) {
            free(bits);
            return NULL;
        }
        for (uint64_t i = 0; i < n; i++)
            if (!(ent[i] & (PAGEMAP_PRESENT | PAGEMAP_SWAPPED)))
                bits[(p + i) / 64] |= 1ull << ((p + i) % 64);
        p += n;
    }
    return bits;
}

void mig_channel_init(MigChannel *ch, int fd)
{
    memset(ch, 0, sizeof(*ch));
    ch->fd = fd;
    ch->extra_fd = -1;
    ch->timeout_ms = 30000;
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

void mig_channel_init_file(MigChannel *ch, int fd)
{
    memset(ch, 0, sizeof(*ch));
    ch->fd = fd;
    ch->extra_fd = -1;
    ch->file = true;
}

/* Waits until fd is ready for `events`; 0, or -1 on cancel / timeout /
 * the extra fd / a poll error. */
static int wait_fd(MigChannel *ch, short events, const char *what)
{
    unsigned waited = 0;
    for (;;) {
        if (ch->cancel && __atomic_load_n(ch->cancel, __ATOMIC_ACQUIRE))
            return fail(ch, "cancelled");
        int tick = POLL_TICK_MS;
        if (ch->deadline_ns) {
            uint64_t now = mig_now_ns();
            if (now >= ch->deadline_ns)
                return fail(ch, "out of time while waiting to %s", what);
            if (ch->deadline_ns - now < (uint64_t)tick * 1000000ull)
                tick = (int)((ch->deadline_ns - now + 999999) / 1000000);
        }
        struct pollfd p[2] = { { .fd = ch->fd, .events = events },
                               { .fd = ch->extra_fd, .events = POLLIN } };
        int n = poll(p, ch->extra_fd >= 0 ? 2 : 1, tick);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return fail(ch, "poll: %s", strerror(errno));
        }
        if (n > 0 && ch->extra_fd >= 0 && (p[1].revents & POLLIN))
            return fail(ch, "interrupted while waiting to %s", what);
        if (n > 0 && p[0].revents)
            return 0; /* ready, or an error the next call reports */
        waited += (unsigned)tick;
        if (ch->timeout_ms && waited >= ch->timeout_ms)
            return fail(ch, "no progress for %u s while waiting to %s", ch->timeout_ms / 1000,
                        what);
    }
}

/* Sleeps as needed so that the bytes written stay under the cap. */
static void throttle(MigChannel *ch, size_t n)
{
    if (!ch->max_bandwidth)
        return;
    uint64_t now = mig_now_ns();
    if (!ch->window_start_ns || now - ch->window_start_ns > 1000000000ull) {
        ch->window_start_ns = now;
        ch->window_bytes = 0;
    }
    ch->window_bytes += n;
    uint64_t due_ns = ch->window_bytes * 1000000000ull / ch->max_bandwidth;
    uint64_t elapsed = now - ch->window_start_ns;
    while (due_ns > elapsed) {
        if (ch->cancel && __atomic_load_n(ch->cancel, __ATOMIC_ACQUIRE))
            return;
        uint64_t d = due_ns - elapsed;
        if (d > 50000000ull)
            d = 50000000ull;
        struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)d };
        nanosleep(&ts, NULL);
        elapsed = mig_now_ns() - ch->window_start_ns;
    }
}

static int send_iov(MigChannel *ch, struct iovec *iov, int n)
{
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    throttle(ch, total);
    while (n > 0) {
        struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };
        ssize_t w = ch->file ? writev(ch->fd, iov, n) : sendmsg(ch->fd, &mh, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (wait_fd(ch, POLLOUT, "send") < 0)
                    return -1;
                continue;
            }
            return fail(ch, "%s: %s", ch->file ? "write" : "send", strerror(errno));
        }
        ch->bytes += (uint64_t)w;
        size_t left = (size_t)w;
        while (n > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + left;
            iov->iov_len -= left;
        }
        if (ch->cancel && __atomic_load_n(ch->cancel, __ATOMIC_ACQUIRE) && n > 0)
            return fail(ch, "cancelled");
    }
    return 0;
}

int mig_send_bytes(MigChannel *ch, const void *p, size_t n)
{
    struct iovec iov = { (void *)p, n };
    return send_iov(ch, &iov, 1);
}

int mig_recv_bytes(MigChannel *ch, void *p, size_t n)
{
    uint8_t *b = p;
    while (n) {
        ssize_t r = ch->file ? read(ch->fd, b, n) : recv(ch->fd, b, n, 0);
        if (r > 0) {
            b += r;
            n -= (size_t)r;
            ch->bytes += (uint64_t)r;
            continue;
        }
        if (r == 0)
            return fail(ch, "the stream ended early (%s after %llu bytes)",
                        ch->file ? "the file ends" : "connection closed",
                        (unsigned long long)ch->bytes);
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (wait_fd(ch, POLLIN, "receive") < 0)
                return -1;
            continue;
        }
        return fail(ch, "recv: %s", strerror(errno));
    }
    return 0;
}

int mig_send_u32(MigChannel *ch, uint32_t v)
{
    uint8_t b[4];
    mig_put_le32(b, v);
    return mig_send_bytes(ch, b, 4);
}

int mig_recv_u32(MigChannel *ch, uint32_t *v)
{
    uint8_t b[4];
    if (mig_recv_bytes(ch, b, 4) < 0)
        return -1;
    *v = mig_get_le32(b);
    return 0;
}

int mig_send_header(MigChannel *ch)
{
    uint8_t h[MIG_HEADER_LEN];
    memcpy(h, MIG_MAGIC, 8); /* NOLINT(bugprone-not-null-terminated-result): no NUL on the wire */
    mig_put_le32(h + 8, MIG_VERSION);
    mig_put_le32(h + 12, 0);
    return mig_send_bytes(ch, h, sizeof(h));
}

int mig_recv_header(MigChannel *ch)
{
    uint8_t h[MIG_HEADER_LEN];
    if (mig_recv_bytes(ch, h, sizeof(h)) < 0)
        return -1;
    if (memcmp(h, MIG_MAGIC, 8))
        return fail(ch, "not a strata migration stream (bad magic)");
    uint32_t v = mig_get_le32(h + 8), flags = mig_get_le32(h + 12);
    if (v != MIG_VERSION)
        return fail(ch, "stream version %u, this strata reads version %u", v, MIG_VERSION);
    if (flags)
        return fail(ch, "stream header flags 0x%x unknown", flags);
    return 0;
}

uint32_t mig_record_max(uint32_t type)
{
    switch (type) {
    case MIG_REC_CONFIG:
        return 64u << 10;
    case MIG_REC_RAM:
        return MIG_RAM_RECORD_MAX;
    case MIG_REC_ROUND:
        return 64;
    case MIG_REC_VMSTATE:
        return 64u << 10;
    case MIG_REC_VCPU:
        return 256u << 10;
    case MIG_REC_DEVICE:
        return 1u << 20;
    case MIG_REC_END:
        return 256;
    default:
        return 0;
    }
}

const char *mig_record_name(uint32_t type)
{
    static const char *const names[] = { "?",       "CONFIG", "RAM",    "ROUND",
                                         "VMSTATE", "VCPU",   "DEVICE", "END" };
    return type <= MIG_REC_TYPE_MAX ? names[type] : "unknown";
}

int mig_send_record(MigChannel *ch, uint32_t type, uint32_t id, const void *payload, uint32_t len)
{
    uint8_t h[12], c[4];
    mig_put_le32(h, type);
    mig_put_le32(h + 4, id);
    mig_put_le32(h + 8, len);
    uint32_t crc = (uint32_t)state_crc32(h, sizeof(h));
    /* CRC of header then payload: continue the running CRC (zlib form) */
    crc = state_crc32_update(crc, payload, len);
    mig_put_le32(c, crc);
    struct iovec iov[3] = { { h, 12 }, { (void *)payload, len }, { c, 4 } };
    if (send_iov(ch, iov, 3) < 0)
        return -1;
    ch->records++;
    return 0;
}

int mig_recv_record(MigChannel *ch, uint32_t *type, uint32_t *id, uint8_t **buf, size_t *cap,
                    uint32_t *len)
{
    uint8_t h[12], c[4];
    uint64_t at = ch->bytes;
    if (mig_recv_bytes(ch, h, sizeof(h)) < 0)
        return -1;
    uint32_t t = mig_get_le32(h), n = mig_get_le32(h + 8);
    uint32_t max = mig_record_max(t);
    if (!max)
        return fail(ch, "record %llu at byte %llu: unknown type %u",
                    (unsigned long long)ch->records, (unsigned long long)at, t);
    if (n > max)
        return fail(ch, "record %llu (%s) at byte %llu: length %u over its limit %u",
                    (unsigned long long)ch->records, mig_record_name(t), (unsigned long long)at, n,
                    max);
    if (*cap < n || !*buf) {
        size_t nc = n ? n : 1;
        uint8_t *nb = realloc(*buf, nc);
        if (!nb)
            return fail(ch, "out of memory for a %u-byte record", n);
        *buf = nb;
        *cap = nc;
    }
    if (mig_recv_bytes(ch, *buf, n) < 0 || mig_recv_bytes(ch, c, 4) < 0)
        return -1;
    uint32_t crc = state_crc32_update((uint32_t)state_crc32(h, sizeof(h)), *buf, n);
    if (crc != mig_get_le32(c))
        return fail(ch, "record %llu (%s) at byte %llu: CRC mismatch (stream corrupt)",
                    (unsigned long long)ch->records, mig_record_name(t), (unsigned long long)at);
    ch->records++;
    *type = t;
    *id = mig_get_le32(h + 4);
    *len = n;
    return 0;
}

/* ---- addresses ------------------------------------------------------------ */

static int parse_tcp(const char *hp, char *host, size_t hl, char *port, size_t pl)
{
    const char *colon = strrchr(hp, ':');
    if (!colon || colon == hp || !colon[1])
        return -1;
    size_t n = (size_t)(colon - hp);
    if (hp[0] == '[' && n >= 2 && hp[n - 1] == ']') { /* [v6]:port */
        hp++;
        n -= 2;
    }
    if (n >= hl || strlen(colon + 1) >= pl)
        return -1;
    memcpy(host, hp, n);
    host[n] = 0;
    /* NOLINTNEXTLINE(clang-analyzer-security.insecureAPI.strcpy): length checked above */
    strcpy(port, colon + 1);
    for (const char *p = port; *p; p++)
        if (*p < '0' || *p > '9')
            return -1;
    long v = strtol(port, NULL, 10);
    return v > 0 && v < 65536 ? 0 : -1;
}

static int unix_addr(const char *path, struct sockaddr_un *sa, char *err, size_t errlen)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (!*path || strlen(path) >= sizeof(sa->sun_path)) {
        snprintf(err, errlen, "unix:%s: path empty or longer than %zu bytes", path,
                 sizeof(sa->sun_path) - 1);
        return -1;
    }
    /* NOLINTNEXTLINE(clang-analyzer-security.insecureAPI.strcpy): length checked above */
    strcpy(sa->sun_path, path);
    return 0;
}

static int tcp_socket(const char *uri, bool listening, bool numeric, char *err, size_t errlen)
{
    char host[256], port[16];
    if (parse_tcp(uri + 4, host, sizeof(host), port, sizeof(port)) < 0) {
        snprintf(err, errlen, "%s: expected tcp:HOST:PORT (port 1-65535)", uri);
        return -1;
    }
    struct addrinfo hints = { .ai_family = AF_UNSPEC,
                              .ai_socktype = SOCK_STREAM,
                              .ai_flags = (listening ? AI_PASSIVE : 0) |
                                          (numeric ? AI_NUMERICHOST : 0) },
                    *res = NULL;
    int r = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (r) {
        snprintf(err, errlen, "%s: %s%s", uri, gai_strerror(r),
                 numeric && r == EAI_NONAME
                     ? " (host names are not resolved under --seccomp=kill: give an IP address)"
                     : "");
        return -1;
    }
    int fd = -1, e = 0;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        int one = 1;
        if (listening) {
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
            if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 1) == 0)
                break;
        } else {
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
                break;
        }
        e = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        snprintf(err, errlen, "%s: %s", uri, strerror(e));
    return fd;
}

const char *mig_check_uri(const char *uri)
{
    char host[256], port[16];
    if (!strncmp(uri, "unix:", 5))
        return uri[5] && strlen(uri + 5) < sizeof(((struct sockaddr_un *)0)->sun_path)
                   ? NULL
                   : "unix:PATH needs a path shorter than 108 bytes";
    if (!strncmp(uri, "tcp:", 4))
        return parse_tcp(uri + 4, host, sizeof(host), port, sizeof(port)) == 0
                   ? NULL
                   : "expected tcp:HOST:PORT (port 1-65535)";
    if (mig_uri_is_file(uri))
        return uri[5] && strlen(uri + 5) < 4096 ? NULL
                                                : "file:PATH needs a path (under 4096 bytes)";
    return "expected tcp:HOST:PORT, unix:PATH or file:PATH";
}

/* 0 when uri is a well-formed socket URI (tcp: or unix:), else -1 with err. */
static int check_socket_uri(const char *uri, char *err, size_t errlen)
{
    const char *why = mig_check_uri(uri);
    if (!why && mig_uri_is_file(uri))
        why = "a file, not a socket";
    if (why) {
        snprintf(err, errlen, "%s: %s", uri, why);
        return -1;
    }
    return 0;
}

int mig_connect(const char *uri, bool numeric_only, char *err, size_t errlen)
{
    if (check_socket_uri(uri, err, errlen) < 0)
        return -1;
    if (!strncmp(uri, "tcp:", 4))
        return tcp_socket(uri, false, numeric_only, err, errlen);
    struct sockaddr_un sa;
    if (unix_addr(uri + 5, &sa, err, errlen) < 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        snprintf(err, errlen, "%s: %s", uri, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

int mig_listen(const char *uri, bool numeric_only, char *err, size_t errlen)
{
    if (check_socket_uri(uri, err, errlen) < 0)
        return -1;
    if (!strncmp(uri, "tcp:", 4))
        return tcp_socket(uri, true, numeric_only, err, errlen);
    struct sockaddr_un sa;
    if (unix_addr(uri + 5, &sa, err, errlen) < 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", uri, strerror(errno));
        return -1;
    }
    struct stat st;
    if (lstat(sa.sun_path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen, "%s: exists and is not a socket", uri);
            close(fd);
            return -1;
        }
        unlink(sa.sun_path); /* a stale socket from an earlier run */
    }
    if (unix_bind_listen(fd, &sa, 1) < 0) {
        snprintf(err, errlen, "%s: %s", uri, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}
