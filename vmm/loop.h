/* SPDX-License-Identifier: MIT */
/* The main thread's epoll loop: every watched fd carries an EvSource. */
#ifndef STRATA_VMM_LOOP_H
#define STRATA_VMM_LOOP_H

#include <stdint.h>

typedef struct EvSource EvSource;
struct EvSource {
    /* Called on the main thread with the epoll events of the fd. */
    void (*handler)(EvSource *src, uint32_t events);
};

/* epoll_ctl ADD / MOD / DEL with src as the event's data; 0 or -errno. */
int ev_add(int epfd, int fd, uint32_t events, EvSource *src);
int ev_mod(int epfd, int fd, uint32_t events, EvSource *src);
int ev_del(int epfd, int fd);

#endif /* STRATA_VMM_LOOP_H */
