/* SPDX-License-Identifier: MIT */
/*
 * Golden state sections (tests/state/golden/NAME.bin): bytes saved by the
 * encoders of commit 4607e10, before field tables, so that the tests can
 * show that today's code writes and reads the same format.  With
 * STRATA_STATE_GOLDEN_WRITE=1 the tests write the fixtures instead of
 * comparing: only together with a section version bump.
 */
#ifndef STRATA_TESTS_STATE_GOLDEN_H
#define STRATA_TESTS_STATE_GOLDEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when the fixtures are being rewritten (STRATA_STATE_GOLDEN_WRITE). */
bool golden_writing(void);
/* Fixture NAME's bytes (malloc()ed); exits the test if it cannot be read. */
uint8_t *golden_read(const char *name, size_t *len);
/* Writing: stores [buf, buf+len) as fixture NAME and returns true.
 * Otherwise: true if they are the fixture's bytes, else false after a
 * line on stderr saying where they first differ. */
bool golden_matches(const char *name, const uint8_t *buf, size_t len);

#endif /* STRATA_TESTS_STATE_GOLDEN_H */
