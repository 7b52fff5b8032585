/* SPDX-License-Identifier: MIT */
/*
 * A fault-injecting proxy between a migration source and its destination
 * (a unix socket the source connects to, forwarding to the destination's
 * --incoming socket).  Faults in the stream: cut after N bytes, one byte
 * flipped.  Faults at the handover (docs/migration.md): the destination's
 * READY, the source's GO and the destination's answer to GO can each be
 * passed, delayed, dropped (the connection stays open) or cut at (both
 * sides closed instead of forwarding it).
 */
#ifndef STRATA_TESTS_MIG_PROXY_H
#define STRATA_TESTS_MIG_PROXY_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum ProxyAction { PX_PASS = 0, PX_DELAY, PX_DROP, PX_CUT } ProxyAction;

/* The handover's three messages. */
enum { PX_READY, PX_GO, PX_ANSWER, PX_NMSG };

typedef struct ProxyFault {
    ProxyAction action;
    unsigned delay_ms; /* PX_DELAY */
} ProxyFault;

typedef struct Proxy {
    /* set before proxy_start */
    uint64_t cut_after;     /* close both after this many source bytes (0: never) */
    uint64_t flip_at;       /* xor 0x5a into this source byte (UINT64_MAX: none) */
    ProxyFault at[PX_NMSG]; /* what happens to READY, GO, the answer to GO */
    /* read by the test (atomically) */
    int seen[PX_NMSG];      /* the message reached the proxy */
    uint32_t tags[PX_NMSG]; /* its 4 bytes (little endian) */
    int done;               /* the proxy closed both sides */
    uint64_t forwarded;     /* source -> destination bytes */
    int connect_errno;      /* the proxy could not reach the destination */
    /* internal */
    char path[128];   /* the source connects here */
    char target[128]; /* the destination's --incoming socket */
    int lfd;
    pthread_t thread;
} Proxy;

/* A proxy with no faults: everything passes. */
void proxy_init(Proxy *p);
/* Listens on tmpdir/NAME.sock (p->path) for one source, forwarding to the
 * unix socket at target. */
void proxy_start(Proxy *p, const char *name, const char *target);
/* Waits for the proxy thread to end (it ends when either side closes). */
void proxy_stop(Proxy *p);
/* True once message m reached the proxy (waits up to timeout_ms). */
bool proxy_wait_seen(Proxy *p, int m, unsigned timeout_ms);

#endif /* STRATA_TESTS_MIG_PROXY_H */
