/* SPDX-License-Identifier: MIT */
/* A blocking QMP client for tests: raw lines in, JSON out, events queued. */
#ifndef STRATA_TESTS_QMP_CLIENT_H
#define STRATA_TESTS_QMP_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct QClient {
    int fd;
    char *buf;
    size_t len, cap;
    json_t *events; /* events read while waiting for replies */
    long long next_id;
} QClient;

/* Connects to a unix socket; NULL if that fails (errno set). */
QClient *qc_connect(const char *path);
/* Connects, checks the greeting and negotiates; aborts the test on error. */
QClient *qc_open(const char *path);
/* Closes and frees. */
void qc_close(QClient *c);
/* Sends raw bytes; false if the socket failed. */
bool qc_send_raw(QClient *c, const void *data, size_t len);
/* The next message from the server (blocking), or NULL at EOF. */
json_t *qc_read(QClient *c);
/* Sends {"execute":name,"arguments":args,"id":N} and returns the reply with
 * that id (events that arrive meanwhile are queued); NULL at EOF. */
json_t *qc_cmd(QClient *c, const char *name, json_t *args);
/* Same with the arguments given as JSON text. */
json_t *qc_cmdf(QClient *c, const char *name, const char *args_json);
/* The next queued-or-arriving event named name; NULL at EOF.  Other events
 * stay queued. */
json_t *qc_wait_event(QClient *c, const char *name);
/* Number of queued events named name (NULL: all). */
size_t qc_count_events(QClient *c, const char *name);
/* Makes every later blocking read give up after ms milliseconds (0: never),
 * as if the connection had closed: a reply or event that never comes then
 * fails the test instead of hanging it. */
void qc_set_timeout(QClient *c, unsigned ms);
/* True if the socket has bytes to read now (or is at EOF). */
bool qc_readable(QClient *c);

#endif /* STRATA_TESTS_QMP_CLIENT_H */
