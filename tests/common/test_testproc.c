/* SPDX-License-Identifier: MIT */
/*
 * testproc_sweep_strays: a process of the swept binary, reparented to init,
 * naming a scratch folder, is spared while the folder's owner lives (a
 * test's own daemon) and ended once the owner is gone (a stray).  The
 * "binary" here is /bin/sleep, run from a link inside the folder so its
 * command line names it.  Skips, saying why, where orphans are not
 * reparented to pid 1 (a subreaper above this test).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testproc.h"

static int failures;

#define EXPECT(cond, ...) \
    do { \
        if (!(cond)) { \
            printf("FAIL %s:%d: ", __FILE__, __LINE__); \
            printf(__VA_ARGS__); \
            printf("\n"); \
            failures++; \
        } \
    } while (0)

static void msleep(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Starts `link 30` as an orphan; its pid (read back through a pipe).
 * Returns only once the orphan has exec'd (or failed to): a close-on-exec
 * pipe it holds reads EOF then.  Until the exec it is a copy of this test,
 * which no sweep of `link` would name. */
static pid_t orphan(const char *link)
{
    int p[2], e[2];
    if (pipe(p) < 0)
        return -1;
    if (pipe2(e, O_CLOEXEC) < 0) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    pid_t c = fork();
    if (c == 0) {
        pid_t g = fork();
        if (g == 0) {
            close(p[0]);
            close(p[1]);
            close(e[0]);
            execl(link, link, "30", (char *)NULL);
            _exit(127);
        }
        (void)!write(p[1], &g, sizeof(g));
        _exit(0);
    }
    close(p[1]);
    close(e[1]);
    pid_t g = -1;
    (void)!read(p[0], &g, sizeof(g));
    close(p[0]);
    waitpid(c, NULL, 0);
    char b;
    while (read(e[0], &b, 1) < 0 && errno == EINTR)
        ;
    close(e[0]);
    return g;
}

/* pid's parent, or -1 once it is gone (a zombie counts as gone: pid 1
 * need not reap it at once). */
static int ppid_of(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    char *rp = strrchr(buf, ')');
    int ppid = -1;
    char st;
    if (!rp || sscanf(rp + 1, " %c %d", &st, &ppid) != 2 || st == 'Z' || st == 'X')
        return -1;
    return ppid;
}

int main(void)
{
    char dir[] = "/tmp/strata-sweeptest-XXXXXX", link[64], owner[80];
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(link, sizeof(link), "%s/sleep", dir);
    snprintf(owner, sizeof(owner), "%s/.owner", dir);
    if (symlink("/bin/sleep", link) < 0) {
        perror("symlink");
        return 1;
    }
    pid_t g = orphan(link);
    int ppid = -1;
    for (int i = 0; i < 100 && g > 0 && (ppid = ppid_of(g)) != 1; i++)
        msleep(10);
    if (g <= 0 || ppid != 1) {
        printf("SKIP: orphans are not reparented to pid 1 here (parent %d): the sweep's "
               "rule cannot be shown\n",
               ppid);
        if (g > 0)
            kill(g, SIGKILL);
        unlink(link);
        rmdir(dir);
        return 77;
    }
    /* the folder's owner (this test) lives: spared */
    int n = testproc_sweep_strays("/bin/sleep", dir);
    EXPECT(n == 0, "a process whose folder's owner lives was swept (%d)", n);
    EXPECT(kill(g, 0) == 0, "the spared process is gone");
    /* an owner that is gone: a stray, ended */
    FILE *f = fopen(owner, "w");
    if (f) {
        fprintf(f, "%d\n", 2147483646);
        fclose(f);
    }
    n = testproc_sweep_strays("/bin/sleep", NULL);
    EXPECT(n == 1, "a stray whose folder's owner is gone was not swept (%d)", n);
    for (int i = 0; i < 100 && ppid_of(g) > 0; i++)
        msleep(10);
    EXPECT(ppid_of(g) < 0, "the stray still runs");
    kill(g, SIGKILL);
    unlink(owner);
    unlink(link);
    rmdir(dir);
    printf("%s: testproc sweep spares a live owner's process, ends a stray\n",
           failures ? "FAIL" : "ok");
    return failures ? 1 : 0;
}
