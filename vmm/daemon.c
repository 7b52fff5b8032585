/* SPDX-License-Identifier: MIT */
/* --daemonize and --pidfile (see daemon.h). */
#include "vmm/daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

void daemon_init(Daemon *d)
{
    memset(d, 0, sizeof(*d));
    d->ready_fd = d->null_fd = d->pid_fd = -1;
}

/* The parent: the child's word, or its exit status. */
static void __attribute__((noreturn)) parent_wait(int fd, pid_t child)
{
    char c;
    ssize_t n;
    while ((n = read(fd, &c, 1)) < 0 && errno == EINTR)
        ;
    if (n == 1)
        _exit(0);
    int st = 0;
    while (waitpid(child, &st, 0) < 0 && errno == EINTR)
        ;
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : 1;
    if (!code) {
        fputs("strata: --daemonize: the VM ended before it was ready\n", stderr);
        code = 1;
    }
    _exit(code);
}

int daemon_start(Daemon *d, char *err, size_t errlen)
{
    int p[2];
    d->null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (d->null_fd < 0 || pipe2(p, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "--daemonize: %s", strerror(errno));
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "--daemonize: fork: %s", strerror(errno));
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid > 0) {
        close(p[1]);
        parent_wait(p[0], pid);
    }
    close(p[0]);
    d->ready_fd = p[1];
    if (setsid() < 0) {
        snprintf(err, errlen, "--daemonize: setsid: %s", strerror(errno));
        return -1;
    }
    return 0;
}

int daemon_pidfile(Daemon *d, const char *path, char *err, size_t errlen)
{
    d->pid_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0644);
    if (d->pid_fd < 0) {
        snprintf(err, errlen, "--pidfile %s: %s", path, strerror(errno));
        return -1;
    }
    struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
    if (fcntl(d->pid_fd, F_OFD_SETLK, &fl) < 0) {
        int e = errno;
        char buf[32] = "";
        ssize_t n = pread(d->pid_fd, buf, sizeof(buf) - 1, 0);
        buf[n > 0 ? n : 0] = '\0';
        long other = strtol(buf, NULL, 10);
        if (e == EAGAIN || e == EACCES)
            snprintf(err, errlen, "--pidfile %s: held by a running strata (pid %ld)", path, other);
        else
            snprintf(err, errlen, "--pidfile %s: lock: %s", path, strerror(e));
        close(d->pid_fd);
        d->pid_fd = -1;
        return -1;
    }
    char buf[32];
    int len = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
    d->pidfile = strdup(path);
    if (!d->pidfile || ftruncate(d->pid_fd, 0) < 0 ||
        pwrite(d->pid_fd, buf, (size_t)len, 0) != len) {
        snprintf(err, errlen, "--pidfile %s: %s", path, d->pidfile ? strerror(errno) : "no memory");
        daemon_end(d);
        return -1;
    }
    return 0;
}

void daemon_ready(Daemon *d)
{
    if (d->ready_fd < 0)
        return;
    for (int fd = 0; fd < 3 && d->null_fd >= 0; fd++)
        dup2(d->null_fd, fd);
    char c = 0;
    while (write(d->ready_fd, &c, 1) < 0 && errno == EINTR)
        ;
    close(d->ready_fd);
    d->ready_fd = -1;
}

void daemon_end(Daemon *d)
{
    if (d->pidfile)
        unlink(d->pidfile); /* before the lock goes: never another's file */
    free(d->pidfile);
    d->pidfile = NULL;
    int *fds[] = { &d->pid_fd, &d->ready_fd, &d->null_fd };
    for (unsigned i = 0; i < 3; i++) {
        if (*fds[i] >= 0)
            close(*fds[i]);
        *fds[i] = -1;
    }
}
