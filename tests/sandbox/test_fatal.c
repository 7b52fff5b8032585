/* SPDX-License-Identifier: MIT */
/*
 * A seccomp kill cleans up (label kvm): strata runs the spin guest with a
 * pseudo-terminal as its stdin and stdout (so --serial stdio puts it in raw
 * mode) and an --api-socket; the test-only STRATA_TEST_SECCOMP_VIOLATE hook
 * makes one thread role call a forbidden syscall.  strata must still die
 * with status 159 and the report line, and afterwards the terminal's
 * settings must equal those it found and the socket file must be gone.
 * A first case checks the premise: while strata runs, the terminal is raw.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "testproc.h"

static char tmpdir[64], sock_path[128], err_path[128];
static int failures, passes;
static pid_t child = -1;

static void cleanup(void)
{
    if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
    }
    if (tmpdir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        (void)!system(cmd);
    }
}

static void check(bool ok, const char *name, const char *detail)
{
    printf("%s %s%s%s\n", ok ? "PASS" : "FAIL", name, ok ? "" : ": ", ok ? "" : detail);
    if (ok) {
        passes++;
    } else {
        failures++;
        char cmd[200];
        snprintf(cmd, sizeof(cmd), "sed 's/^/    | /' '%s' | tail -n 20", err_path);
        (void)!system(cmd);
    }
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* strata run with the pty's slave as stdin and stdout, stderr to err_path;
 * role: the STRATA_TEST_SECCOMP_VIOLATE value, or NULL. */
static pid_t start(int slave, const char *role)
{
    unlink(sock_path);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        testproc_child_init(parent);
        setsid();
        int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(slave, STDIN_FILENO);
        dup2(slave, STDOUT_FILENO);
        dup2(e, STDERR_FILENO);
        if (role)
            setenv("STRATA_TEST_SECCOMP_VIOLATE", role, 1);
        execl(STRATA_BIN, STRATA_BIN, "run", "--test-device", "--kernel", SPIN_ELF, "--rng",
              "--api-socket", sock_path, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Reads (and drops) the guest's output so strata never blocks on the pty. */
static void drain(int master, int ms)
{
    struct pollfd p = { master, POLLIN, 0 };
    char buf[512];
    if (poll(&p, 1, ms) > 0 && (p.revents & POLLIN))
        (void)!read(master, buf, sizeof(buf));
    else if (p.revents)
        usleep((useconds_t)ms * 1000); /* POLLHUP: nothing to read */
}

/* Waits (draining) for the child; its exit status, 128+N for signal N, or
 * -1 after 30 s. */
static int wait_child(int master)
{
    double end = now() + 30;
    while (now() < end) {
        int st;
        pid_t r = waitpid(child, &st, WNOHANG);
        if (r == child) {
            child = -1;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        drain(master, 20);
    }
    return -1;
}

static bool same_termios(const struct termios *a, const struct termios *b)
{
    return a->c_iflag == b->c_iflag && a->c_oflag == b->c_oflag && a->c_cflag == b->c_cflag &&
           a->c_lflag == b->c_lflag && !memcmp(a->c_cc, b->c_cc, sizeof(a->c_cc));
}

static bool contains(const char *path, const char *text)
{
    FILE *f = fopen(path, "r");
    char line[512];
    bool found = false;
    while (f && !found && fgets(line, sizeof(line), f))
        found = strstr(line, text) != NULL;
    if (f)
        fclose(f);
    return found;
}

/* A new pseudo-terminal and its slave's settings as strata will find them. */
static void open_pty(int *master, int *slave, struct termios *orig)
{
    if (openpty(master, slave, NULL, NULL, NULL) < 0 || tcgetattr(*slave, orig) < 0) {
        perror("openpty");
        exit(1);
    }
}

/* Premise: strata puts its terminal in raw mode and restores it on a clean
 * end (SIGTERM), and the socket appears. */
static void case_raw_while_running(void)
{
    int master, slave;
    struct termios orig, t;
    open_pty(&master, &slave, &orig);
    child = start(slave, NULL);
    bool raw = false, sock = false;
    double end = now() + 20;
    while (now() < end && !(raw && sock)) {
        drain(master, 20);
        struct stat st;
        sock = stat(sock_path, &st) == 0 && S_ISSOCK(st.st_mode);
        raw = tcgetattr(slave, &t) == 0 && !(t.c_lflag & ICANON) && !(t.c_lflag & ECHO);
    }
    kill(child, SIGTERM);
    int rc = wait_child(master);
    tcgetattr(slave, &t);
    char detail[200];
    snprintf(detail, sizeof(detail),
             "raw while running %d, socket %d, exit status %d (want "
             "143), terminal restored %d",
             raw, sock, rc, same_termios(&orig, &t));
    check(raw && sock && rc == 143 && same_termios(&orig, &t),
          "no violation: the pty is raw while strata runs, restored at SIGTERM", detail);
    close(master);
    close(slave);
}

static void case_violation(const char *role)
{
    int master, slave;
    struct termios orig, t;
    open_pty(&master, &slave, &orig);
    child = start(slave, role);
    int rc = wait_child(master);
    bool restored = tcgetattr(slave, &t) == 0 && same_termios(&orig, &t);
    struct stat st;
    bool sock_gone = lstat(sock_path, &st) < 0 && errno == ENOENT;
    char want[160], name[200], detail[300];
    snprintf(want, sizeof(want),
             "strata: seccomp: %s thread made a forbidden syscall personality (nr 135)", role);
    bool said = contains(err_path, want);
    snprintf(name, sizeof(name),
             "%s: a seccomp kill restores the terminal and removes the "
             "API socket",
             role);
    snprintf(detail, sizeof(detail),
             "exit status %d (want 159), report line %s, terminal "
             "restored %s (lflag 0x%x, was 0x%x), socket %s",
             rc, said ? "yes" : "no", restored ? "yes" : "NO", (unsigned)t.c_lflag,
             (unsigned)orig.c_lflag, sock_gone ? "gone" : "LEFT BEHIND");
    check(rc == 159 && said && restored && sock_gone, name, detail);
    close(master);
    close(slave);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    int kfd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kfd < 0) {
        printf("SKIP: /dev/kvm: %s: the seccomp clean-up test runs strata guests\n",
               strerror(errno));
        return 77;
    }
    close(kfd);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/strata-fatal-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    atexit(cleanup);
    testproc_sweep_strays(STRATA_BIN, tmpdir);
    snprintf(sock_path, sizeof(sock_path), "%s/qmp.sock", tmpdir);
    snprintf(err_path, sizeof(err_path), "%s/stderr.txt", tmpdir);

    case_raw_while_running();
    /* stdin, waiter and main start after the terminal went raw; vcpu and io
     * before it, where the socket is the part that could be left behind */
    static const char *const roles[] = { "stdin", "waiter", "main", "vcpu", "io" };
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
        case_violation(roles[i]);
    printf("sandbox fatal: %d passed, %d failed\n", passes, failures);
    return failures ? 1 : 0;
}
