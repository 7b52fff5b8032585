/* SPDX-License-Identifier: MIT */
/* Children that die with the test, and strays of earlier runs (testproc.h). */
#include "testproc.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

void testproc_child_init(pid_t parent)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
        _exit(127);
    if (getppid() != parent) /* the test ended before prctl */
        _exit(127);
}

/* The parent pid of pid from /proc/pid/stat (-1 if gone). */
static pid_t parent_of(pid_t pid)
{
    char p[64], buf[512];
    snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    const char *rp = strrchr(buf, ')'); /* comm may hold spaces */
    int ppid;
    char state;
    if (!rp || sscanf(rp + 1, " %c %d", &state, &ppid) != 2)
        return -1;
    return ppid;
}

/* pid's command line with NULs as spaces (into buf). */
static void cmdline_of(pid_t pid, char *buf, size_t len)
{
    char p[64];
    snprintf(p, sizeof(p), "/proc/%d/cmdline", (int)pid);
    buf[0] = 0;
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    if (n <= 0)
        return;
    for (ssize_t i = 0; i < n; i++)
        if (!buf[i])
            buf[i] = ' ';
    buf[n] = 0;
}

/* True if the scratch folder named in cmd (/tmp/strata-NAME/...) has a
 * .owner whose process is alive. */
static bool owner_alive(const char *cmd)
{
    const char *d = strstr(cmd, "/tmp/strata-");
    if (!d)
        return false;
    size_t n = strcspn(d + 5, "/ ") + 5; /* "/tmp/" then the folder's name */
    char path[PATH_MAX];
    if (n + sizeof("/.owner") > sizeof(path))
        return false;
    snprintf(path, sizeof(path), "%.*s/.owner", (int)n, d);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    long pid = 0;
    bool alive = fscanf(f, "%ld", &pid) == 1 && pid > 1 && kill((pid_t)pid, 0) == 0;
    fclose(f);
    return alive;
}

int testproc_sweep_strays(const char *bin, const char *own_dir)
{
    if (own_dir) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/.owner", own_dir);
        FILE *f = fopen(path, "w");
        if (f) {
            fprintf(f, "%ld\n", (long)getpid());
            fclose(f);
        }
    }
    char want[PATH_MAX];
    if (!realpath(bin, want))
        return 0;
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    int found = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 1 || pid == getpid())
            continue;
        char p[64], exe[PATH_MAX];
        snprintf(p, sizeof(p), "/proc/%ld/exe", pid);
        ssize_t n = readlink(p, exe, sizeof(exe) - 1);
        if (n <= 0)
            continue;
        exe[n] = 0;
        /* a rebuilt binary shows as "PATH (deleted)" */
        size_t wl = strlen(want);
        if (strncmp(exe, want, wl) || (exe[wl] && strcmp(exe + wl, " (deleted)")))
            continue;
        if (parent_of((pid_t)pid) != 1) /* its test (or another owner) lives */
            continue;
        char cmd[512];
        cmdline_of((pid_t)pid, cmd, sizeof(cmd));
        if (!strstr(cmd, "/tmp/strata-") || owner_alive(cmd))
            continue;
        fprintf(stderr,
                "testproc: a stray strata from an earlier test run (pid %ld, parent "
                "gone): %.300s; ending it\n",
                pid, cmd);
        kill((pid_t)pid, SIGKILL);
        found++;
    }
    closedir(d);
    return found;
}

int testproc_guard(pid_t pid)
{
    int p[2];
    if (pid <= 0 || pipe2(p, O_CLOEXEC) < 0)
        return -1;
    pid_t g = fork();
    if (g < 0) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (g == 0) {
        close(p[1]);
        char c;
        ssize_t n;
        while ((n = read(p[0], &c, 1)) < 0 && errno == EINTR)
            ;
        if (n != 1) /* the test is gone without disarming: so is pid */
            kill(pid, SIGKILL);
        _exit(0);
    }
    close(p[0]);
    return p[1]; /* held (close-on-exec) until the test ends or disarms */
}

void testproc_guard_disarm(int fd)
{
    if (fd < 0)
        return;
    char c = 'd';
    (void)!write(fd, &c, 1);
    close(fd);
}
