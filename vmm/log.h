/* SPDX-License-Identifier: MIT */
/*
 * strata's log (--log-level, --log-file): one sink for the whole process.
 *
 * Levels, most severe first: error, warn, info, debug.  A message is
 * written when its level is at or above the chosen one (default warn).
 *
 * Without a log file, messages go to stderr in strata's short form,
 * "strata: MESSAGE", as they always have.  With --log-file PATH they go to
 * PATH (opened for appending), one timestamped line each:
 *
 *     2025-03-04T05:06:07.089Z info  machine built: ...
 *
 * (ISO-8601 UTC with milliseconds, the level padded to 5 columns, the
 * message); errors are also repeated on stderr in the short form.
 *
 * log_report is for the one-line outcomes strata has always printed on
 * stderr (a migration's or a restore's figures): they are info messages,
 * but at the default settings (no --log-level, no --log-file) they still
 * reach stderr, so nothing that read them there breaks.
 *
 * Thread safe: each line is one write(2) (O_APPEND), and the settings are
 * made once at start-up, before any other thread exists.
 */
#ifndef STRATA_VMM_LOG_H
#define STRATA_VMM_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

typedef enum LogLevel { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG } LogLevel;

#define LOG_DEFAULT_LEVEL LOG_WARN
#define LOG_LINE_MAX 1024 /* a longer message is cut, ending in "..." */

/* The level's name ("error", "warn", "info", "debug"). */
const char *log_level_name(LogLevel l);
/* Parses a level's name into *out: 0, or -1 for anything else. */
int log_level_parse(const char *s, LogLevel *out);

/* Formats one log-file line (with its '\n') for a message at level l
 * logged at ts (CLOCK_REALTIME) into buf (cap bytes, NUL-terminated when
 * cap > 0); a message too long is cut and ends in "...".  Returns the
 * line's length (at most cap - 1). */
size_t log_format_line(char *buf, size_t cap, const struct timespec *ts, LogLevel l,
                       const char *msg);

/* Sets the level (level_set: the user chose it) and, when path is not
 * NULL, opens the log file for appending (created 0640).  0, or -1 with err
 * naming the file. */
int log_setup(LogLevel level, bool level_set, const char *path, char *err, size_t errlen);
/* Closes the log file; later messages go to stderr again. */
void log_teardown(void);
/* Whether a message at level l would be written anywhere. */
bool log_enabled(LogLevel l);
/* Logs one message (printf format, no trailing newline). */
void log_msg(LogLevel l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Logs one of strata's traditional outcome lines (see above). */
void log_report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* STRATA_VMM_LOG_H */
