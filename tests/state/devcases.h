/* SPDX-License-Identifier: MIT */
/*
 * Every device that saves state, built the same way for the state tests:
 * fake guest memory (tests/virtio/vtest.h), no /dev/kvm, and a fixed
 * scenario of guest accesses that leaves each device in a state worth
 * saving (FIFOs part full, queues live, events pending).  The scenarios
 * are deterministic, so a device's saved section is the same bytes on
 * every run: tests/state/golden/ holds them as written by the encoders
 * before field tables existed.
 */
#ifndef STRATA_TESTS_STATE_DEVCASES_H
#define STRATA_TESTS_STATE_DEVCASES_H

#include <stdbool.h>
#include <stdio.h>

#include "devices/device.h"
#include "memory/state-table.h"
#include "tests/virtio/vtest.h"

typedef struct DevInst {
    const DeviceOps *ops;
    void *dev;     /* the device (its DeviceOps' argument) */
    Vt vt;         /* memory context, guest RAM, the virtio window */
    FILE *console; /* the test device's console (/dev/null) */
    int peer;      /* virtio-net: the TAP's other end, or -1 */
} DevInst;

typedef struct DevCase {
    const char *name;            /* "serial": also the fixture's file name */
    const StateSection *section; /* what it saves: magic, version, field table */
    /* Makes the device in power-on state; then, if scenario, runs the
     * scenario's guest accesses.  Aborts on failure. */
    void (*make)(DevInst *d, bool scenario);
    /* Frees what make made. */
    void (*free)(DevInst *d);
} DevCase;

/* The cases, one per saved device kind (a virtio one twice: running and
 * broken), in a fixed order. */
extern const DevCase dev_cases[];
extern const unsigned dev_ncases;

/* Sets up d's memory and makes case c's device in it (see DevCase.make). */
void dev_open(DevInst *d, const DevCase *c, bool scenario);
/* Frees the device and its memory. */
void dev_close(DevInst *d, const DevCase *c);
/* d's saved section (malloc()ed); aborts if save fails. */
uint8_t *dev_save(DevInst *d, size_t *len);

#endif /* STRATA_TESTS_STATE_DEVCASES_H */
