/* SPDX-License-Identifier: MIT */
/*
 * The QMP server: a unix socket speaking QEMU's machine protocol.
 *
 * Framing: one JSON value per line ('\n'; several values on one line are
 * also accepted); replies and events are one line each, ending in "\r\n".
 * Each client negotiates on its own (qmp_capabilities).  Sockets are
 * non-blocking; a client's unsent output is buffered up to QMP_OUT_CAP
 * (over that the client is dropped) and its requests are not read while
 * more than QMP_OUT_HIGH bytes wait, so no client can block the loop, the
 * VM or the other clients.  A request line longer than QMP_MAX_LINE gets
 * an error and the rest of that line is discarded.
 *
 * Everything runs on the main thread (the epoll loop), so command handlers
 * may touch the region tree.
 */
#ifndef STRATA_VMM_QMP_H
#define STRATA_VMM_QMP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "vmm/loop.h"

#define QMP_MAX_LINE (1u << 20)
#define QMP_OUT_HIGH (256u << 10)
#define QMP_OUT_CAP (16u << 20)
#define QMP_MAX_CLIENTS 256

typedef struct QmpServer QmpServer;
typedef struct QmpClient QmpClient;

typedef enum QmpArgType {
    QMP_ARG_STRING, QMP_ARG_INT, QMP_ARG_BOOL, QMP_ARG_OBJECT, QMP_ARG_ARRAY, QMP_ARG_ANY,
} QmpArgType;

typedef struct QmpArg {
    const char *name;
    QmpArgType type;
    bool optional;
} QmpArg;

/* What a failed handler returns: a QMP error class and description. */
typedef struct QmpError {
    const char *cls;        /* "GenericError", "CommandNotFound", ... */
    char desc[512];
} QmpError;

/* A command: returns the "return" value (a new reference), or NULL after
 * filling err.  args has been checked against the argument table. */
typedef json_t *(*QmpHandler)(void *opaque, QmpClient *client, json_t *args, QmpError *err);

typedef struct QmpCommand {
    const char *name;
    QmpHandler fn;
    const QmpArg *args;     /* terminated by a NULL name; NULL = no arguments */
} QmpCommand;

/* Sets err's class to GenericError and formats its description. */
void qmp_error_set(QmpError *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Listens on path (a stale socket there is replaced; anything else there
 * is an error) and registers with epfd.  cmds (ncmds, kept by reference)
 * are served besides the built-in qmp_capabilities and query-commands.
 * NULL with a message in err on failure.
 */
QmpServer *qmp_server_new(const char *path, int epfd, const QmpCommand *cmds, size_t ncmds,
                          void *opaque, char *err, size_t errlen);
/* Closes every client (after one last attempt to send their output),
 * closes and removes the socket.  NULL is a no-op. */
void qmp_server_free(QmpServer *srv);
/* Frees clients that were closed during the last epoll batch; call after
 * each batch. */
void qmp_server_reap(QmpServer *srv);
/* Sends {"event": name, "data": data, "timestamp": ..} to every negotiated
 * client; steals data (NULL = {}). */
void qmp_server_event(QmpServer *srv, const char *name, json_t *data);
/* Number of connected clients. */
unsigned qmp_server_nr_clients(const QmpServer *srv);
/* The names of every command served, as a QMP query-commands list. */
json_t *qmp_server_command_list(const QmpServer *srv);

#endif /* STRATA_VMM_QMP_H */
