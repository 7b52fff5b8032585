/* SPDX-License-Identifier: MIT */
/*
 * serial-attach: a client of `strata run --serial socket=PATH` for the e2e
 * tier (it runs inside the nested test bed, whose busybox nc has no unix
 * sockets).  Connects, copies what arrives to stdout, sends LINE (if
 * given, with a CR, as a terminal would) once READY has arrived (default:
 * at once), and exits 0 when UNTIL arrives after that, 1 after SECS, 2 if
 * the socket closes.
 *
 *   serial-attach PATH SECS UNTIL [LINE [READY]]
 */
#include <errno.h>
#include <stdbool.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 6) {
        fprintf(stderr, "usage: serial-attach PATH SECS UNTIL [LINE [READY]]\n");
        return 64;
    }
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(argv[1]) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "serial-attach: %s: path too long\n", argv[1]);
        return 64;
    }
    strcpy(sa.sun_path, argv[1]);
    double secs = atof(argv[2]), t0 = now();
    const char *until = argv[3], *line = argc >= 5 ? argv[4] : NULL;
    const char *ready = argc == 6 ? argv[5] : NULL;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        fprintf(stderr, "serial-attach: %s: %s\n", argv[1], strerror(errno));
        return 2;
    }
    enum { CAP = 1 << 16 };
    static char seen[CAP + 1];
    size_t nseen = 0;
    bool sent = line == NULL;
    for (;;) {
        double left = secs - (now() - t0);
        if (left <= 0)
            return 1;
        if (!sent && (!ready || memmem(seen, nseen, ready, strlen(ready)))) {
            char buf[512];
            int n = snprintf(buf, sizeof(buf), "%s\r", line);
            if (write(fd, buf, (size_t)n) != n)
                return 2;
            sent = true;
        }
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int r = poll(&p, 1, (int)(left * 1000) + 1);
        if (r < 0 && errno != EINTR)
            return 2;
        if (r <= 0)
            continue;
        char buf[4096];
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0)
            return 2;
        fwrite(buf, 1, (size_t)n, stdout);
        fflush(stdout);
        if (nseen + (size_t)n > CAP) { /* keep the newest half */
            memmove(seen, seen + CAP / 2, nseen - CAP / 2);
            nseen -= CAP / 2;
        }
        memcpy(seen + nseen, buf, (size_t)n);
        nseen += (size_t)n;
        seen[nseen] = 0;
        if (sent && memmem(seen, nseen, until, strlen(until)))
            return 0;
    }
}
