/* SPDX-License-Identifier: MIT */
/*
 * The UART's host side for --serial pty and --serial socket=PATH.
 *
 * The UART (devices/serial.h) writes each byte the guest sends to a pipe
 * that never blocks: a byte that finds the pipe full is dropped, so the
 * vCPU thread never waits on a slow reader.  The backend's thread moves
 * the pipe's bytes into a ring of CHARDEV_RING_SIZE bytes (the newest are
 * kept) and from the ring to the reader when it can take them:
 *
 *   pty          a pseudo terminal (posix_openpt) in raw mode; its slave's
 *                path is printed as "char device redirected to /dev/pts/N
 *                (label serial0)".  strata keeps the slave open, so the
 *                terminal buffers output until someone reads it.
 *   socket=PATH  a unix stream socket server (mode 0600).  One client at a
 *                time is attached (a second one is told so and closed); it
 *                may leave and come back, and on attach it first gets what
 *                the guest wrote while nobody read (the last 64 KiB).
 *
 * What the reader sends reaches the UART's receive FIFO as fast as the
 * guest drains it.
 */
#ifndef STRATA_VMM_CHARDEV_H
#define STRATA_VMM_CHARDEV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/serial.h"
#include "vmm/config.h"
#include "vmm/ring.h"

#define CHARDEV_RING_SIZE (64 * 1024)
#define CHARDEV_LABEL "serial0"

typedef struct Chardev {
    bool open;
    SerialMode mode;   /* SERIAL_PTY or SERIAL_SOCKET */
    char *path;        /* the socket's path (socket mode) */
    char pty_name[64]; /* the slave's path (pty mode) */
    int out_pipe[2];   /* the UART writes [1]; the thread reads [0] */
    int listen_fd;     /* socket mode, else -1 */
    int peer_fd;       /* the attached client (socket) or the master (pty); -1: none */
    int pty_slave;     /* held open (pty mode), else -1 */
    int stop[2];       /* pipe: a byte ends the thread */
    pthread_t thread;
    bool started;
    ByteRing ring;   /* output not yet handed to the reader */
    uint8_t in[256]; /* input waiting for room in the UART's FIFO */
    size_t in_off, in_len;
    SerialState *uart;
    int (*enter_thread)(void *opaque); /* the thread's first call; nonzero: it stops */
    void *opaque;
    uint64_t dropped; /* output bytes lost (ring overflow) */
} Chardev;

/* Creates the pty or the listening socket (cfg->serial is SERIAL_PTY or
 * SERIAL_SOCKET) and the UART's pipe; prints the pty's path.  0, or -1
 * with err naming the option. */
int chardev_open(Chardev *c, const VmConfig *cfg, char *err, size_t errlen);
/* The fd the UART writes the guest's output to. */
int chardev_out_fd(const Chardev *c);
/* Starts the thread that feeds uart and drains its output; it calls
 * enter_thread(opaque) first when set.  0 or a negative errno. */
int chardev_start(Chardev *c, SerialState *uart, int (*enter_thread)(void *), void *opaque);
/* Ends the thread (if started) and closes everything; removes the socket's
 * path.  No-op on a Chardev chardev_open never opened. */
void chardev_close(Chardev *c);

#endif /* STRATA_VMM_CHARDEV_H */
