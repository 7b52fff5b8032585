/* SPDX-License-Identifier: MIT */
/* CHECK: the assertion of the tests that drive strata processes. */
#ifndef STRATA_TESTS_CHECK_H
#define STRATA_TESTS_CHECK_H

#include <stdio.h>
#include <stdlib.h>

/* The including test defines it: prints what the strata processes logged. */
void dump_logs(void);

/* Fails the test (exit 1) unless cond holds: prints where, cond, the
 * printf-style message and the strata logs. */
#define CHECK(cond, ...)                                                              \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n  ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                             \
            fputc('\n', stderr);                                                      \
            dump_logs();                                                              \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

#endif /* STRATA_TESTS_CHECK_H */
