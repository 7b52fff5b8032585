/* SPDX-License-Identifier: MIT */
/*
 * The QMP server: a unix socket speaking QEMU's machine protocol.
 *
 * Framing: QEMU's (qmp-stream.h): a request is one JSON value, found by
 * counting braces and brackets outside strings, so it may span several
 * lines and several may share one; a malformed one gets one error and the
 * stream resynchronises as QEMU's does.  Replies and events are one line
 * each, ending in "\r\n".
 * Each client negotiates on its own (qmp_capabilities).  Sockets are
 * non-blocking, so no client can block the loop, the VM or the others.
 *
 * Memory is bounded (QMP_BUDGET, 64 MiB in all, worst case):
 *   - at most QMP_MAX_CLIENTS clients;
 *   - each may always buffer QMP_IN_BASE bytes of input and QMP_OUT_BASE of
 *     output; what a buffer holds beyond that (a long line, a big reply)
 *     comes from one pool of QMP_POOL bytes shared by all clients.  A
 *     request that cannot get its bytes from the pool is refused with an
 *     error (the rest of its line discarded); so is a reply (an error with
 *     its id instead);
 *   - a request is at most QMP_MAX_REQUEST bytes, QMP_MAX_TOKENS JSON
 *     tokens and QMP_MAX_DEPTH levels of nesting (so its parse tree is
 *     bounded too): a bigger one gets an error and the rest of its line is
 *     discarded.  QEMU's bounds are 64 MiB, 2 Mi tokens and 1024 levels;
 *     strata keeps its per-client memory bounds below (the 1 MiB request
 *     fits the input buffer's pool share, the tokens the transient budget)
 *     and takes QEMU's depth, which a 1 MiB request can reach anyway;
 *   - back-pressure: a client's requests (including the rest of a line of
 *     many) are read and executed only while its unsent output is under
 *     QMP_OUT_HIGH; once over, nothing more of its input is read or run
 *     until the output drains to QMP_OUT_LOW.  Requests read are not
 *     dropped: they wait (unless the client itself is dropped, below);
 *   - an event that would take a client's output past QMP_OUT_CAP or past
 *     what the pool can give drops that client (logged): it is not reading;
 *   - a client that has sent nothing and read nothing for the idle timeout
 *     (default QMP_IDLE_TIMEOUT_MS; environment STRATA_QMP_IDLE_TIMEOUT_MS,
 *     0 = never) is disconnected, logged; a client held back by
 *     back-pressure that does not read is idle too;
 *   - when all QMP_MAX_CLIENTS slots are taken, a newcomer evicts the client
 *     idle the longest (logged, told so in an error line) if that one has
 *     been idle QMP_EVICT_MIN_IDLE_MS or more; otherwise it is refused.
 *     Idle connections therefore cannot lock everyone out.
 * (The kernel's socket buffers are not counted: they are kernel memory.)
 *
 * Everything runs on the main thread (the epoll loop), so command handlers
 * may touch the region tree.
 */
#ifndef STRATA_VMM_CONTROL_QMP_H
#define STRATA_VMM_CONTROL_QMP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "vmm/loop.h"

#define QMP_MAX_REQUEST (1u << 20) /* bytes of one request */
#define QMP_MAX_TOKENS 32768       /* '{' '[' ',' ':' of one request */
#define QMP_MAX_DEPTH 1024         /* nesting of one request (QEMU's MAX_NESTING) */
#define QMP_MAX_CLIENTS 128
#define QMP_IN_BASE (64u << 10)        /* input every client may buffer */
#define QMP_OUT_BASE (64u << 10)       /* output every client may buffer */
#define QMP_OUT_HIGH (32u << 10)       /* over this, a client's requests wait */
#define QMP_OUT_LOW (8u << 10)         /* until its output drains to this */
#define QMP_OUT_CAP (4u << 20)         /* one client's output, at most */
#define QMP_POOL (36u << 20)           /* buffers beyond their base, all clients */
#define QMP_CLIENT_OVERHEAD (2u << 10) /* the client struct, malloc's headers */
#define QMP_TRANSIENT (8u << 20)       /* the one request being run (see qmp.c) */
#define QMP_BUDGET (64u << 20)
#define QMP_IDLE_TIMEOUT_MS 300000u
#define QMP_EVICT_MIN_IDLE_MS 1000u

/* 128 * (64 KiB + 64 KiB + 2 KiB) = 16.25 MiB, + 36 MiB pool + 8 MiB for the
 * request being run = 60.25 MiB <= 64 MiB. */
_Static_assert((unsigned long long)QMP_MAX_CLIENTS *(QMP_IN_BASE + QMP_OUT_BASE +
                                                     QMP_CLIENT_OVERHEAD) +
                       QMP_POOL + QMP_TRANSIENT <=
                   QMP_BUDGET,
               "QMP buffers exceed their memory budget");

typedef struct QmpServer QmpServer;
typedef struct QmpClient QmpClient;

typedef enum QmpArgType {
    QMP_ARG_STRING,
    QMP_ARG_INT,
    QMP_ARG_BOOL,
    QMP_ARG_OBJECT,
    QMP_ARG_ARRAY,
    QMP_ARG_ANY,
} QmpArgType;

typedef struct QmpArg {
    const char *name;
    QmpArgType type;
    bool optional;
} QmpArg;

/* What a failed handler returns: a QMP error class and description. */
typedef struct QmpError {
    const char *cls; /* "GenericError", "CommandNotFound", ... */
    char desc[512];
} QmpError;

/* A command: returns the "return" value (a new reference), or NULL after
 * filling err.  args has been checked against the argument table. */
typedef json_t *(*QmpHandler)(void *opaque, QmpClient *client, json_t *args, QmpError *err);

typedef struct QmpCommand {
    const char *name;
    QmpHandler fn;
    const QmpArg *args; /* terminated by a NULL name; NULL = no arguments */
    void *opaque;       /* fn's first argument; NULL: the server's opaque */
} QmpCommand;

/* Sets err's class to GenericError and formats its description. */
void qmp_error_set(QmpError *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Listens on path (a stale socket there is replaced; anything else there
 * is an error) and registers with epfd.  cmds (ncmds, kept by reference)
 * are served besides the built-in qmp_capabilities, query-commands and
 * query-qmp-schema.
 * NULL with a message in err on failure.
 */
QmpServer *qmp_server_new(const char *path, int epfd, const QmpCommand *cmds, size_t ncmds,
                          void *opaque, char *err, size_t errlen);
/* Whether the server takes connections from its loop (it does from
 * qmp_server_new on).  Held, the socket still listens: a client that
 * connects waits in the backlog, is accepted and greeted once it is
 * released.  0, or -errno from epoll.  NULL is a no-op. */
int qmp_server_accepting(QmpServer *srv, bool on);
/* Closes every client (after one last attempt to send their output),
 * closes and removes the socket.  NULL is a no-op. */
void qmp_server_free(QmpServer *srv);
/* Frees clients that were closed during the last epoll batch; call after
 * each batch. */
void qmp_server_reap(QmpServer *srv);
/* Sends {"event": name, "data": data, "timestamp": ..} to every negotiated
 * client; steals data (NULL = {}). */
void qmp_server_event(QmpServer *srv, const char *name, json_t *data);
/* The version as the greeting and query-version give it: strata's own
 * (vmm/version.h) in QEMU's fields, {"qemu": {"major", "minor", "micro"},
 * "package": "strata"}; a new reference. */
json_t *qmp_version_json(void);
/* Number of connected clients. */
unsigned qmp_server_nr_clients(const QmpServer *srv);
/* The names of every command served, as a QMP query-commands list. */
json_t *qmp_server_command_list(const QmpServer *srv);
/* query-qmp-schema, made from the served table itself (never a copy kept
 * by hand): every command with its arguments' names, types and optional
 * flags (an object type per command, QEMU's SchemaInfo layout), the
 * built-in types they use; return types "any".  No events: strata has no
 * table of them. */
json_t *qmp_server_schema(const QmpServer *srv);

#endif /* STRATA_VMM_CONTROL_QMP_H */
