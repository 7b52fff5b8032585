/* SPDX-License-Identifier: MIT */
/* strata's log (see log.h). */
#include "vmm/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Set once by log_setup before other threads start; read-only after. */
static LogLevel log_level = LOG_DEFAULT_LEVEL;
static bool log_level_chosen;
static int log_fd = -1;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

const char *log_level_name(LogLevel l)
{
    return (unsigned)l <= LOG_DEBUG ? level_names[l] : "?";
}

int log_level_parse(const char *s, LogLevel *out)
{
    for (unsigned i = 0; s && i <= LOG_DEBUG; i++) {
        if (!strcmp(s, level_names[i])) {
            *out = (LogLevel)i;
            return 0;
        }
    }
    return -1;
}

size_t log_format_line(char *buf, size_t cap, const struct timespec *ts, LogLevel l,
                       const char *msg)
{
    if (!cap)
        return 0;
    struct tm tm;
    time_t sec = ts->tv_sec;
    char date[32];
    if (!gmtime_r(&sec, &tm) || !strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm))
        snprintf(date, sizeof(date), "%lld", (long long)sec); /* out of gmtime_r range */
    int n = snprintf(buf, cap, "%s.%03ldZ %-5s ", date, ts->tv_nsec / 1000000L, log_level_name(l));
    if (n < 0) {
        buf[0] = '\0';
        return 0;
    }
    size_t len = (size_t)n < cap ? (size_t)n : cap - 1;
    size_t room = cap - 1 - len; /* bytes left before the NUL */
    size_t mlen = strlen(msg);
    bool cut = mlen + 1 > room;
    size_t take = !cut ? mlen : room > 4 ? room - 4 : 0;
    for (size_t i = 0; i < take; i++) { /* one entry, one line */
        char ch = msg[i];
        if (ch == '\n' || ch == '\r')
            ch = ' ';
        buf[len++] = ch;
    }
    const char *end = cut ? "...\n" : "\n";
    for (size_t i = 0; end[i] && len < cap - 1; i++)
        buf[len++] = end[i];
    buf[len] = '\0';
    return len;
}

int log_setup(LogLevel level, bool level_set, const char *path, char *err, size_t errlen)
{
    log_level = level;
    log_level_chosen = level_set;
    if (!path)
        return 0;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
    if (fd < 0) {
        snprintf(err, errlen, "--log-file %s: %s", path, strerror(errno));
        return -1;
    }
    if (log_fd >= 0)
        close(log_fd);
    log_fd = fd;
    return 0;
}

void log_teardown(void)
{
    if (log_fd >= 0)
        close(log_fd);
    log_fd = -1;
}

bool log_enabled(LogLevel l)
{
    return l <= log_level;
}

static void write_all(int fd, const char *s, size_t len)
{
    while (len) {
        ssize_t n = write(fd, s, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        s += n;
        len -= (size_t)n;
    }
}

static void to_stderr(const char *msg)
{
    char line[LOG_LINE_MAX + 16];
    int n = snprintf(line, sizeof(line), "strata: %s\n", msg);
    if (n > 0)
        write_all(STDERR_FILENO, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

/* msg: the formatted message (LOG_LINE_MAX bytes), n: vsnprintf's result. */
static void emit(LogLevel l, bool report, char *msg, int n)
{
    if (n < 0)
        return;
    if ((size_t)n >= LOG_LINE_MAX)
        memcpy(msg + LOG_LINE_MAX - 4, "...", 4);
    if (log_fd < 0) {
        if (l <= log_level || (report && !log_level_chosen))
            to_stderr(msg);
        return;
    }
    if (l <= log_level) {
        char line[LOG_LINE_MAX + 64];
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        write_all(log_fd, line, log_format_line(line, sizeof(line), &ts, l, msg));
    }
    if (l == LOG_ERROR)
        to_stderr(msg);
}

void log_msg(LogLevel l, const char *fmt, ...)
{
    char msg[LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    /* ap is started on the line above (the analyzer loses track of it) */
    /* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized) */
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    emit(l, false, msg, n);
}

void log_report(const char *fmt, ...)
{
    char msg[LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    /* ap is started on the line above (the analyzer loses track of it) */
    /* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized) */
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    emit(LOG_INFO, true, msg, n);
}
