/* SPDX-License-Identifier: MIT */
/*
 * Operations (kvm tier): a detached strata (--daemonize --pidfile
 * --serial socket=PATH --api-socket --log-file), its serial socket
 * attached, left and re-attached (what the guest wrote meanwhile is
 * replayed), input echoed by the guest, a snapshot's figures in the log,
 * quit through QMP, the pidfile gone; then --serial pty.
 *
 * The daemon is no child of the test: a guard (testproc_guard) kills it
 * when the test ends however it ends, and the test's exit kills it too.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "qmp_harness.h"
#include "testproc.h"

static pid_t daemon_pid = -1;
static int guard_fd = -1;
static char serial_path[100], pid_path[160], log_path[160];

void dump_logs(void)
{
    char *s = read_log("stderr.txt"), *l = slurp(log_path);
    fprintf(stderr, "---- strata stderr ----\n%s---- strata log ----\n%s----\n", s, l);
    free(s);
    free(l);
}

static char refused_pid_path[160];

static void kill_pidfile(const char *path)
{
    char *s = slurp(path);
    pid_t p = (pid_t)atoi(s);
    free(s);
    if (p > 0)
        kill(p, SIGKILL);
}

static void kill_daemon(void)
{
    if (daemon_pid > 0)
        kill(daemon_pid, SIGKILL);
    /* a daemon the test had not learnt of yet (a check failed first),
     * or one that should have been refused: their pidfiles say */
    kill_pidfile(pid_path);
    kill_pidfile(refused_pid_path);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Gone: no such process, or a zombie nobody reaped yet. */
static int process_gone(pid_t pid)
{
    if (kill(pid, 0) < 0 && errno == ESRCH)
        return 1;
    char p[64];
    snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
    char *s = slurp(p);
    char *rp = strrchr(s, ')');
    int zombie = rp && rp[1] == ' ' && rp[2] == 'Z';
    free(s);
    return zombie;
}

static int serial_connect(void)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", serial_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect %s: %s",
          serial_path, strerror(errno));
    return fd;
}

/* Appends what fd sends to buf (NUL-terminated, cap bytes) until it holds
 * want or ms pass or the peer closes; whether want was seen. */
static int read_until(int fd, char *buf, size_t cap, size_t *len, const char *want, unsigned ms)
{
    uint64_t end = now_ms() + ms;
    while (!strstr(buf, want)) {
        uint64_t t = now_ms();
        if (t >= end)
            return 0;
        struct pollfd p = { fd, POLLIN, 0 };
        if (poll(&p, 1, (int)(end - t)) <= 0)
            continue;
        if (*len + 1 >= cap) { /* keep the newest half */
            memmove(buf, buf + cap / 2, *len - cap / 2);
            *len -= cap / 2;
        }
        ssize_t n = read(fd, buf + *len, cap - 1 - *len);
        if (n <= 0)
            return 0;
        *len += (size_t)n;
        buf[*len] = '\0';
    }
    return 1;
}

/* The number of the last complete "tick N\n" line in buf, or 0. */
static unsigned last_tick(const char *buf)
{
    unsigned last = 0, n;
    for (const char *p = buf; (p = strstr(p, "tick ")); p++) {
        char nl;
        if (sscanf(p, "tick %u%c", &n, &nl) == 2 && nl == '\n')
            last = n;
    }
    return last;
}

static void test_daemon(void)
{
    char api[160], snap[160];
    snprintf(api, sizeof(api), "%s", sock_path);
    snprintf(snap, sizeof(snap), "%s/snap", tmpdir);
    /* --daemonize with the serial port on stdio: refused, saying why */
    strata_pid = spawn("--kernel", CHATTER_ELF, "--daemonize", "--pidfile", refused_pid_path, NULL);
    int st = wait_status(strata_pid);
    char *err = read_log("stderr.txt");
    CHECK(st == 1 && strstr(err, "--daemonize: the serial port is on stdio"),
          "--daemonize with --serial stdio: status %d, '%s'", st, err);
    free(err);
    char serial_opt[180];
    snprintf(serial_opt, sizeof(serial_opt), "socket=%s", serial_path);
    pid_t parent = strata_pid = spawn("--kernel", CHATTER_ELF, "--memory", "16M", "--daemonize",
                                      "--pidfile", pid_path, "--serial", serial_opt, "--api-socket",
                                      api, "--log-level", "info", "--log-file", log_path, NULL);
    st = wait_status(strata_pid);
    CHECK(st == 0, "the foreground strata exits 0 once the daemon runs (got %d)", st);
    char *pidtext = slurp(pid_path);
    daemon_pid = (pid_t)atoi(pidtext);
    free(pidtext);
    CHECK(daemon_pid > 0, "the pidfile holds a pid");
    guard_fd = testproc_guard(daemon_pid);
    CHECK(guard_fd >= 0, "no guard for the daemon");
    CHECK(kill(daemon_pid, 0) == 0 && !process_gone(daemon_pid), "pid %d is alive",
          (int)daemon_pid);
    CHECK(daemon_pid != parent, "the daemon is another process than the one started");
    char *log = slurp(log_path);
    CHECK(strstr(log, " info  machine built: strata-microvm, memory 16 MiB, 1 vCPU, serial socket"),
          "the log says what was built");
    free(log);
    printf("daemon: pid %d running, foreground returned 0\n", (int)daemon_pid);

    /* a second strata on the same pidfile is refused */
    strata_pid = spawn("--kernel", CHATTER_ELF, "--memory", "16M", "--serial", "none", "--pidfile",
                       pid_path, NULL);
    st = wait_status(strata_pid);
    err = read_log("stderr.txt");
    char want[200];
    snprintf(want, sizeof(want), "held by a running strata (pid %d)", (int)daemon_pid);
    CHECK(st == 1 && strstr(err, want), "second strata on the pidfile: status %d, '%s'", st, err);
    free(err);

    /* attach: the guest's output arrives; a second client is turned away */
    static char buf[1 << 17];
    size_t len = 0;
    buf[0] = '\0';
    int fd = serial_connect();
    CHECK(read_until(fd, buf, sizeof(buf), &len, "tick 3\n", 20000), "no ticks: '%s'", buf);
    int fd2 = serial_connect();
    char b2[200] = "";
    size_t l2 = 0;
    CHECK(read_until(fd2, b2, sizeof(b2), &l2, "another client is attached", 5000),
          "a second client is refused: '%s'", b2);
    close(fd2);
    /* input reaches the guest, which echoes it */
    CHECK(write(fd, "xyz", 3) == 3, "write");
    CHECK(read_until(fd, buf, sizeof(buf), &len, "<x><y><z>", 10000), "no echo of xyz");
    unsigned seen = last_tick(buf);
    close(fd);
    printf("serial: attached, ticks up to %u, echo seen; detached\n", seen);

    msleep(1000);
    len = 0;
    buf[0] = '\0';
    fd = serial_connect();
    char next[32];
    snprintf(next, sizeof(next), "tick %u\n", seen + 1);
    CHECK(read_until(fd, buf, sizeof(buf), &len, next, 10000),
          "re-attached: the tick after the last one seen (%u) is replayed", seen);
    close(fd);
    log = slurp(log_path);
    const char *att = strstr(log, "a client attached to serial0 (");
    att = att ? strstr(att + 1, "a client attached to serial0 (") : NULL; /* the second */
    CHECK(att && atoi(att + 30) > 0, "the re-attach found output kept for it");
    free(log);
    printf("serial: re-attached, output written while detached replayed (from tick %u)\n",
           seen + 1);

    /* a snapshot: its figures in the log */
    QClient *c = qc_open(api);
    char args[220];
    snprintf(args, sizeof(args), "{\"uri\": \"file:%s\"}", snap);
    json_decref(ok(c, "migrate", args));
    uint64_t end = now_ms() + 60000;
    for (;;) {
        log = slurp(log_path);
        if (strstr(log, " info  snapshot saved to ") && strstr(log, "downtime "))
            break;
        free(log);
        CHECK(now_ms() < end, "no snapshot line in the log");
        msleep(50);
    }
    free(log);
    json_decref(ok(c, "quit", NULL));
    qc_close(c);
    end = now_ms() + 20000;
    while (!process_gone(daemon_pid)) {
        CHECK(now_ms() < end, "the daemon is still there after quit");
        msleep(20);
    }
    testproc_guard_disarm(guard_fd);
    guard_fd = -1;
    daemon_pid = -1;
    CHECK(access(pid_path, F_OK) < 0 && errno == ENOENT, "the pidfile is removed");
    CHECK(access(serial_path, F_OK) < 0 && errno == ENOENT, "the serial socket is removed");
    log = slurp(log_path);
    CHECK(strstr(log, " info  strata exits with status 0\n"), "the log ends with the exit");
    /* every line: YYYY-MM-DDTHH:MM:SS.mmmZ LEVEL message */
    for (const char *p = log; *p; p = strchr(p, '\n') + 1) {
        CHECK(strlen(p) > 31 && p[4] == '-' && p[10] == 'T' && p[19] == '.' && p[23] == 'Z' &&
                  p[24] == ' ' && strchr(p, '\n'),
              "log line '%.60s'", p);
    }
    free(log);
    printf("daemon: snapshot figures logged, quit: process gone, pidfile removed\n");
}

static void test_pty(void)
{
    strata_pid = spawn("--kernel", CHATTER_ELF, "--memory", "16M", "--serial", "pty", NULL);
    char path[128] = "";
    uint64_t end = now_ms() + 20000;
    while (!path[0]) {
        char *err = read_log("stderr.txt");
        const char *p = strstr(err, "char device redirected to ");
        if (p)
            sscanf(p, "char device redirected to %127s (label serial0)", path);
        free(err);
        CHECK(now_ms() < end, "no 'char device redirected to' line");
        if (!path[0])
            msleep(20);
    }
    CHECK(!strncmp(path, "/dev/pts/", 9), "a pty path: %s", path);
    int fd = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
    CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
    char buf[4096] = "";
    size_t len = 0;
    CHECK(read_until(fd, buf, sizeof(buf), &len, "tick 2\n", 20000), "no ticks on %s", path);
    CHECK(write(fd, "q", 1) == 1, "write to the pty");
    CHECK(read_until(fd, buf, sizeof(buf), &len, "<q>", 10000), "no echo through the pty");
    close(fd);
    kill(strata_pid, SIGTERM);
    int st = wait_status(strata_pid);
    CHECK(st == 128 + SIGTERM, "strata ends on SIGTERM (%d)", st);
    printf("pty: %s opened, output read, input echoed\n", path);
}

int main(void)
{
    harness_init("ops");
    atexit(kill_daemon);
    snprintf(serial_path, sizeof(serial_path), "%s/serial.sock", tmpdir);
    snprintf(pid_path, sizeof(pid_path), "%s/strata.pid", tmpdir);
    snprintf(refused_pid_path, sizeof(refused_pid_path), "%s/refused.pid", tmpdir);
    snprintf(log_path, sizeof(log_path), "%s/strata.log", tmpdir);
    test_daemon();
    test_pty();
    printf("ops: all passed\n");
    return 0;
}
