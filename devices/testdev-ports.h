/* SPDX-License-Identifier: MIT */
/*
 * The strata test device's ports: how tiny guests talk to the host that
 * runs them.  Shared by the device (devices/testdev.c, `strata run
 * --test-device`), the test kit's host side (tests/guests/kit.c) and guest
 * code (tests/guests/guest.h, entry.S): plain #defines, so freestanding C
 * and assembly can include it.
 *
 * TESTDEV_PORT_SIZE (12) PIO ports from TESTDEV_PORT_BASE:
 *
 *   0xf0 REPORT  outl v: append the 32-bit value v to the run's report log.
 *   0xf1 PUTC    outb c: one character of guest console output (the host
 *                collects a line and prints it with a "guest: " prefix).
 *   0xf4 EXIT    outl code: the guest is done; the run ends with `code`
 *                (0 = pass, TESTDEV_EXIT_ASSERT = a GUEST_ASSERT failed,
 *                anything else is the test's own failure code).  The same
 *                port and width as QEMU's isa-debug-exit with iobase=0xf4,
 *                so one guest ELF also runs under QEMU.
 *   0xf8 SYNC    outl phase: the host's sync handler runs (synchronously:
 *                the vCPU waits) and its 32-bit answer is latched;
 *                inl: reads the latched answer.  This is the handshake that
 *                lets a test change the machine between guest phases.
 *
 * Everything else in 0xf0..0xfb is ignored; reads of REPORT/PUTC/EXIT
 * return TESTDEV_MAGIC so a guest can check that the device is there.
 */
#ifndef STRATA_DEVICES_TESTDEV_PORTS_H
#define STRATA_DEVICES_TESTDEV_PORTS_H

#define TESTDEV_PORT_BASE 0xf0
#define TESTDEV_PORT_SIZE 0x0c
#define TESTDEV_PORT_REPORT 0xf0
#define TESTDEV_PORT_PUTC 0xf1
#define TESTDEV_PORT_EXIT 0xf4
#define TESTDEV_PORT_SYNC 0xf8

#define TESTDEV_MAGIC 0x54534454u     /* "TDST" */
#define TESTDEV_EXIT_ASSERT 0xa55e17u /* a GUEST_ASSERT failed */

#endif /* STRATA_DEVICES_TESTDEV_PORTS_H */
