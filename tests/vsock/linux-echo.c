/* SPDX-License-Identifier: MIT */
/*
 * vsock-echo: both ends of the e2e vsock case (tests/e2e/cases.sh,
 * vsock_linux), one static program for the Linux guest (AF_VSOCK) and for
 * the host side of strata's --vsock (its Unix sockets, Firecracker's
 * protocol: README, --vsock).  BYTES 0: connect, then close.
 *
 *   vsock-echo serve PORT              guest: echo every connection to PORT
 *   vsock-echo wait PORT               guest: take one connection to PORT,
 *                                      read it to its end, exit 0 (the host
 *                                      says "done" by connecting)
 *   vsock-echo uds-serve PATH          host: echo every connection to the
 *                                      Unix socket PATH (strata's uds_PORT)
 *   vsock-echo connect CID PORT N BYTES       guest: N connections at once
 *   vsock-echo uds-connect PATH PORT N BYTES  host: N connections at once
 *                                      through strata's socket PATH
 *                                      ("CONNECT PORT\n", "OK n\n")
 *
 * A client sends BYTES of a pattern particular to its connection on each of
 * N connections, all open together, reads the echo back and compares it;
 * it prints "vsock-echo: N/N connections, BYTES bytes each: echo intact"
 * and exits 0, or names the first connection that failed and exits 1.
 * Servers fork a child per connection.  Every wait is bounded (alarm).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#define MAX_CONNS 1024
#define TIMEOUT_S 240

static void die(const char *what)
{
    fprintf(stderr, "vsock-echo: %s: %s\n", what, strerror(errno));
    exit(1);
}

static unsigned long num(const char *s, const char *what)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || end == s) {
        fprintf(stderr, "vsock-echo: %s: '%s' is not a number\n", what, s);
        exit(2);
    }
    return v;
}

/* ---- servers ------------------------------------------------------------ */

static __attribute__((noreturn)) void echo_child(int c)
{
    char buf[16384];
    for (;;) {
        ssize_t n = read(c, buf, sizeof(buf));
        if (n <= 0)
            _exit(0);
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(c, buf + off, (size_t)(n - off));
            if (w <= 0)
                _exit(1);
            off += w;
        }
    }
}

static __attribute__((noreturn)) void serve(int l)
{
    signal(SIGCHLD, SIG_IGN); /* children reaped by the kernel */
    if (listen(l, 256) < 0)
        die("listen");
    printf("vsock-echo: listening\n");
    fflush(stdout);
    for (;;) {
        int c = accept(l, NULL, NULL);
        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            die("accept");
        }
        pid_t p = fork();
        if (p == 0) {
            close(l);
            echo_child(c);
        }
        close(c);
    }
}

static int serve_vsock(unsigned port)
{
    int l = socket(AF_VSOCK, SOCK_STREAM, 0);
    if (l < 0)
        die("socket(AF_VSOCK)");
    struct sockaddr_vm a = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port };
    if (bind(l, (struct sockaddr *)&a, sizeof(a)) < 0)
        die("bind");
    serve(l);
}

static int wait_vsock(unsigned port)
{
    int l = socket(AF_VSOCK, SOCK_STREAM, 0);
    if (l < 0)
        die("socket(AF_VSOCK)");
    struct sockaddr_vm a = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port };
    if (bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 1) < 0)
        die("bind/listen");
    int c;
    while ((c = accept(l, NULL, NULL)) < 0)
        if (errno != EINTR)
            die("accept");
    char buf[256];
    while (read(c, buf, sizeof(buf)) > 0)
        ;
    return 0;
}

static int serve_uds(const char *path)
{
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    if (l < 0)
        die("socket(AF_UNIX)");
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(a.sun_path)) {
        fprintf(stderr, "vsock-echo: %s: path too long\n", path);
        return 2;
    }
    strcpy(a.sun_path, path);
    unlink(path);
    if (bind(l, (struct sockaddr *)&a, sizeof(a)) < 0)
        die("bind");
    serve(l);
}

/* ---- clients ------------------------------------------------------------ */

typedef struct {
    int fd;
    size_t sent, got;
    int done;
} Conn;

static uint8_t pattern(unsigned conn, size_t i)
{
    return (uint8_t)(conn * 131u + i * 7u + (i >> 9));
}

/* Reads "OK <port>\n" from strata's host socket, a byte at a time. */
static int read_ok(int fd)
{
    char line[64];
    size_t n = 0;
    while (n < sizeof(line) - 1) {
        ssize_t r = read(fd, line + n, 1);
        if (r <= 0)
            return -1;
        if (line[n++] == '\n')
            break;
    }
    line[n] = 0;
    return strncmp(line, "OK ", 3) == 0 ? 0 : -1;
}

static int connect_one(int uds, const char *path, unsigned cid, unsigned port)
{
    int fd;
    if (uds) {
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
        if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
            return -1;
        char line[32];
        int n = snprintf(line, sizeof(line), "CONNECT %u\n", port);
        if (write(fd, line, (size_t)n) != n || read_ok(fd) < 0) {
            close(fd);
            return -1;
        }
    } else {
        fd = socket(AF_VSOCK, SOCK_STREAM, 0);
        struct sockaddr_vm a = { .svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port };
        if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
            if (fd >= 0)
                close(fd);
            return -1;
        }
    }
    return fd;
}

static int run_clients(int uds, const char *path, unsigned cid, unsigned port, unsigned n,
                       size_t bytes)
{
    static Conn c[MAX_CONNS];
    static struct pollfd pf[MAX_CONNS];
    uint8_t buf[16384];
    for (unsigned i = 0; i < n; i++) {
        c[i].fd = connect_one(uds, path, cid, port);
        if (c[i].fd < 0) {
            printf("vsock-echo: connection %u of %u to port %u failed: %s\n", i, n, port,
                   strerror(errno));
            return 1;
        }
        /* non-blocking: a blocked write must not keep this side from
         * reading the echo that frees the peer */
        fcntl(c[i].fd, F_SETFL, fcntl(c[i].fd, F_GETFL) | O_NONBLOCK);
    }
    unsigned left = bytes ? n : 0;
    while (left) {
        for (unsigned i = 0; i < n; i++) {
            pf[i].fd = c[i].done ? -1 : c[i].fd;
            pf[i].events = (short)(POLLIN | (c[i].sent < bytes ? POLLOUT : 0));
            pf[i].revents = 0;
        }
        if (poll(pf, n, -1) < 0) {
            if (errno == EINTR)
                continue;
            die("poll");
        }
        for (unsigned i = 0; i < n; i++) {
            Conn *k = &c[i];
            if (k->done)
                continue;
            if ((pf[i].revents & POLLOUT) && k->sent < bytes) {
                size_t len = bytes - k->sent < sizeof(buf) ? bytes - k->sent : sizeof(buf);
                for (size_t j = 0; j < len; j++)
                    buf[j] = pattern(i, k->sent + j);
                ssize_t w = write(k->fd, buf, len);
                if (w < 0 && errno != EAGAIN) {
                    printf("vsock-echo: connection %u: write: %s\n", i, strerror(errno));
                    return 1;
                }
                if (w > 0)
                    k->sent += (size_t)w;
            }
            if (pf[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                ssize_t r = read(k->fd, buf, sizeof(buf));
                if (r < 0 && errno == EAGAIN)
                    continue;
                if (r <= 0) {
                    printf("vsock-echo: connection %u: closed after %zu of %zu bytes echoed "
                           "(%s)\n",
                           i, k->got, bytes, r < 0 ? strerror(errno) : "end of stream");
                    return 1;
                }
                for (ssize_t j = 0; j < r; j++) {
                    if (buf[j] != pattern(i, k->got + (size_t)j)) {
                        printf("vsock-echo: connection %u: byte %zu differs\n", i,
                               k->got + (size_t)j);
                        return 1;
                    }
                }
                k->got += (size_t)r;
                if (k->got > bytes) {
                    printf("vsock-echo: connection %u: %zu bytes echoed, %zu sent\n", i, k->got,
                           bytes);
                    return 1;
                }
                if (k->got == bytes) {
                    k->done = 1;
                    close(k->fd);
                    left--;
                }
            }
        }
    }
    printf("vsock-echo: %u/%u connections, %zu bytes each: echo intact\n", n, n, bytes);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: vsock-echo serve PORT | wait PORT | uds-serve PATH |\n"
                    "       connect CID PORT N BYTES | uds-connect PATH PORT N BYTES\n");
    exit(2);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    if (argc < 3)
        usage();
    const char *m = argv[1];
    if (!strcmp(m, "serve") && argc == 3)
        return serve_vsock((unsigned)num(argv[2], "PORT"));
    if (!strcmp(m, "wait") && argc == 3) {
        alarm(TIMEOUT_S * 2);
        return wait_vsock((unsigned)num(argv[2], "PORT"));
    }
    if (!strcmp(m, "uds-serve") && argc == 3)
        return serve_uds(argv[2]);
    int uds = !strcmp(m, "uds-connect");
    if ((uds || !strcmp(m, "connect")) && argc == 6) {
        unsigned n = (unsigned)num(argv[4], "N");
        if (n < 1 || n > MAX_CONNS) {
            fprintf(stderr, "vsock-echo: N: 1 to %d\n", MAX_CONNS);
            return 2;
        }
        alarm(TIMEOUT_S); /* a stall ends the client, with SIGALRM's status */
        return run_clients(uds, argv[2], uds ? 0 : (unsigned)num(argv[2], "CID"),
                           (unsigned)num(argv[3], "PORT"), n, (size_t)num(argv[5], "BYTES"));
    }
    usage();
    return 2;
}
