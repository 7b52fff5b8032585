/* SPDX-License-Identifier: MIT */
/* --serial pty and --serial socket=PATH (see chardev.h). */
#include "vmm/chardev.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "vmm/log.h"
#include "vmm/unix-listen.h"

#define INPUT_RETRY_MS 5 /* the guest's FIFO is full: look again after */

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static int open_pty(Chardev *c, char *err, size_t errlen)
{
    c->peer_fd = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    const char *what = "posix_openpt";
    if (c->peer_fd >= 0 && (grantpt(c->peer_fd) < 0 || unlockpt(c->peer_fd) < 0))
        what = "unlockpt";
    else if (c->peer_fd >= 0 && ptsname_r(c->peer_fd, c->pty_name, sizeof(c->pty_name)))
        what = "ptsname";
    else if (c->peer_fd >= 0)
        what = NULL;
    if (!what) {
        /* Raw, so that output arrives as written and nothing is echoed
         * back to the guest; held open so the settings stay and the master
         * never reads as hung up while no one has the terminal open. */
        c->pty_slave = open(c->pty_name, O_RDWR | O_NOCTTY | O_CLOEXEC);
        struct termios t;
        if (c->pty_slave < 0 || tcgetattr(c->pty_slave, &t) < 0)
            what = c->pty_name;
        if (!what) {
            cfmakeraw(&t);
            if (tcsetattr(c->pty_slave, TCSANOW, &t) < 0)
                what = "tcsetattr";
        }
    }
    if (what) {
        snprintf(err, errlen, "--serial pty: %s: %s", what, strerror(errno));
        return -1;
    }
    int fl = fcntl(c->peer_fd, F_GETFL);
    if (fl < 0 || fcntl(c->peer_fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        snprintf(err, errlen, "--serial pty: %s", strerror(errno));
        return -1;
    }
    /* stderr, as QEMU says it: scripts look for this line */
    fprintf(stderr, "char device redirected to %s (label %s)\n", c->pty_name, CHARDEV_LABEL);
    log_msg(LOG_INFO, "serial: char device redirected to %s (label %s)", c->pty_name,
            CHARDEV_LABEL);
    return 0;
}

static int open_socket(Chardev *c, const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path); /* length checked by config */
    c->path = strdup(path);
    c->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (!c->path || c->listen_fd < 0 || unix_bind_listen(c->listen_fd, &sa, 4) < 0) {
        snprintf(err, errlen, "--serial socket=%s: %s", path, strerror(errno));
        free(c->path);
        c->path = NULL; /* not ours to remove */
        return -1;
    }
    log_msg(LOG_INFO, "serial: %s listening on %s", CHARDEV_LABEL, path);
    return 0;
}

int chardev_open(Chardev *c, const VmConfig *cfg, char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    c->out_pipe[0] = c->out_pipe[1] = c->stop[0] = c->stop[1] = -1;
    c->listen_fd = c->peer_fd = c->pty_slave = -1;
    c->mode = cfg->serial;
    c->open = true;
    if (byte_ring_init(&c->ring, CHARDEV_RING_SIZE) < 0 ||
        pipe2(c->out_pipe, O_NONBLOCK | O_CLOEXEC) < 0 || pipe2(c->stop, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "--serial: %s", strerror(errno ? errno : ENOMEM));
        return -1;
    }
    return c->mode == SERIAL_PTY ? open_pty(c, err, errlen)
                                 : open_socket(c, cfg->serial_path, err, errlen);
}

int chardev_out_fd(const Chardev *c)
{
    return c->out_pipe[1];
}

/* Whatever the UART wrote goes into the ring. */
static void drain_uart(Chardev *c)
{
    uint8_t buf[4096];
    for (;;) {
        ssize_t n = read(c->out_pipe[0], buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        c->dropped += byte_ring_write(&c->ring, buf, (size_t)n);
    }
}

static void detach(Chardev *c, const char *why)
{
    close_fd(&c->peer_fd);
    c->in_len = c->in_off = 0;
    log_msg(LOG_INFO, "serial: client of %s left (%s)", CHARDEV_LABEL, why);
}

static void attach(Chardev *c)
{
    int fd = accept4(c->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    if (c->peer_fd >= 0) {
        static const char busy[] = "strata: serial0: another client is attached\r\n";
        (void)!write(fd, busy, sizeof(busy) - 1);
        close(fd);
        return;
    }
    c->peer_fd = fd;
    log_msg(LOG_INFO, "serial: a client attached to %s (%zu bytes kept for it)", CHARDEV_LABEL,
            c->ring.len);
}

/* Hands the ring's bytes to the reader as far as it takes them. */
static void flush_ring(Chardev *c)
{
    const uint8_t *p;
    size_t n;
    while (c->peer_fd >= 0 && (n = byte_ring_peek(&c->ring, &p)) > 0) {
        ssize_t w = write(c->peer_fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            return;
        if (w <= 0) {
            if (c->mode == SERIAL_SOCKET)
                detach(c, strerror(errno));
            return;
        }
        byte_ring_consume(&c->ring, (size_t)w);
    }
}

/* Reads what the reader typed (when the last batch is in the FIFO) and
 * offers it to the UART. */
static void feed_uart(Chardev *c, bool readable)
{
    if (readable && c->in_off == c->in_len) {
        ssize_t n = read(c->peer_fd, c->in, sizeof(c->in));
        if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
            if (c->mode == SERIAL_SOCKET)
                detach(c, n == 0 ? "closed" : strerror(errno));
            return;
        }
        c->in_off = 0;
        c->in_len = n > 0 ? (size_t)n : 0;
    }
    if (c->in_off < c->in_len)
        c->in_off += serial_receive(c->uart, c->in + c->in_off, c->in_len - c->in_off);
}

static void *chardev_main(void *arg)
{
    Chardev *c = arg;
    if (c->enter_thread && c->enter_thread(c->opaque))
        return NULL; /* no serial backend; the VM runs on */
    for (;;) {
        bool waiting_input = c->in_off < c->in_len;
        struct pollfd p[4] = {
            { c->stop[0], POLLIN, 0 },
            { c->out_pipe[0], POLLIN, 0 },
            { c->listen_fd, POLLIN, 0 },
            { c->peer_fd, (short)((waiting_input ? 0 : POLLIN) | (c->ring.len ? POLLOUT : 0)), 0 },
        };
        int r = poll(p, 4, waiting_input ? INPUT_RETRY_MS : -1);
        if (r < 0 && errno != EINTR)
            return NULL;
        if (r < 0)
            continue;
        if (p[0].revents)
            return NULL;
        if (p[1].revents)
            drain_uart(c);
        if (p[2].revents)
            attach(c);
        if (c->peer_fd >= 0 && p[3].fd == c->peer_fd) {
            if (p[3].revents & POLLIN)
                feed_uart(c, true);
            else if ((p[3].revents & (POLLHUP | POLLERR)) && c->mode == SERIAL_SOCKET)
                detach(c, "hung up");
            else if (waiting_input)
                feed_uart(c, false);
        }
        if (c->peer_fd >= 0 && c->ring.len)
            flush_ring(c);
    }
}

int chardev_start(Chardev *c, SerialState *uart, int (*enter_thread)(void *), void *opaque)
{
    c->uart = uart;
    c->enter_thread = enter_thread;
    c->opaque = opaque;
    int r = pthread_create(&c->thread, NULL, chardev_main, c);
    if (r)
        return -r;
    c->started = true;
    return 0;
}

void chardev_close(Chardev *c)
{
    if (!c->open)
        return;
    if (c->started) {
        char b = 0;
        while (write(c->stop[1], &b, 1) < 0 && errno == EINTR)
            ;
        pthread_join(c->thread, NULL);
        c->started = false;
    }
    if (c->dropped)
        log_msg(LOG_INFO, "serial: %llu bytes of guest output were dropped (nobody read them)",
                (unsigned long long)c->dropped);
    int *fds[] = { &c->out_pipe[0], &c->out_pipe[1], &c->stop[0],  &c->stop[1],
                   &c->listen_fd,   &c->peer_fd,     &c->pty_slave };
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
        close_fd(fds[i]);
    if (c->path)
        unlink(c->path);
    free(c->path);
    byte_ring_free(&c->ring);
    c->open = false;
}
