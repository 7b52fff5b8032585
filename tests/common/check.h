/* SPDX-License-Identifier: MIT */
/*
 * CHECK: the one assertion of the tests that do not use cmocka (the kvm
 * tier's TEST_ASSERT, the QMP and migration harnesses, qmp-linux, the
 * mtree parser's test).  A failed check ends the test at once: it prints
 * file:line, the condition and a printf-style message, runs dump_logs() if
 * the test defines one, and exits 1.
 */
#ifndef STRATA_TESTS_CHECK_H
#define STRATA_TESTS_CHECK_H

#include <stdio.h>
#include <stdlib.h>

/* Optional: a test that drives strata processes defines it to print what
 * they logged; a failed CHECK calls it (if defined) before exiting. */
void dump_logs(void) __attribute__((weak));

/* Runs dump_logs() if the test defines it. */
static inline void check_dump_logs(void)
{
    void (*fn)(void) = dump_logs;

    if (fn)
        fn();
}

/* Fails the test (exit 1) unless cond holds: prints where, cond, the
 * printf-style message (required) and, if defined, dump_logs(). */
#define CHECK(cond, ...) \
    do { \
        if (!(cond)) { \
            fflush(stdout); \
            fprintf(stderr, "%s:%d: check failed: %s\n  ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__); \
            fputc('\n', stderr); \
            check_dump_logs(); \
            exit(1); \
        } \
    } while (0)

#endif /* STRATA_TESTS_CHECK_H */
