/* SPDX-License-Identifier: MIT */
/* A listening unix socket whose path appears only once it accepts. */
#ifndef STRATA_VMM_UNIX_LISTEN_H
#define STRATA_VMM_UNIX_LISTEN_H

#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/*
 * Binds fd (an AF_UNIX stream socket) to sa's path and listens, so that a
 * client that sees the path can connect: bind() makes the path before
 * listen(), and a connect() in between is refused, so the socket is bound
 * under a temporary name beside the path and renamed into place once it
 * listens.  (A path too long for the temporary name is bound directly.)
 * The socket is mode 0600 before it appears: connecting needs write
 * permission on it, so only strata's user (and root) can connect, whatever
 * the umask.  0, or -1 with errno set.
 */
static inline int unix_bind_listen(int fd, const struct sockaddr_un *sa, int backlog)
{
    struct sockaddr_un tmp = { .sun_family = AF_UNIX };
    int n = snprintf(tmp.sun_path, sizeof(tmp.sun_path), "%s.%d~", sa->sun_path, (int)getpid());
    if (n < 0 || (size_t)n >= sizeof(tmp.sun_path)) {
        if (bind(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0)
            return -1;
        return chmod(sa->sun_path, 0600) < 0 ? -1 : listen(fd, backlog);
    }
    unlink(tmp.sun_path);
    if (bind(fd, (const struct sockaddr *)&tmp, sizeof(tmp)) < 0)
        return -1;
    if (chmod(tmp.sun_path, 0600) < 0 || listen(fd, backlog) < 0 ||
        rename(tmp.sun_path, sa->sun_path) < 0) {
        int e = errno;
        unlink(tmp.sun_path);
        errno = e;
        return -1;
    }
    return 0;
}

#endif /* STRATA_VMM_UNIX_LISTEN_H */
