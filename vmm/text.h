/* SPDX-License-Identifier: MIT */
/*
 * Text that came from outside strata (a migration peer, a QMP client or
 * server, a config file) printed safely: one line of printable ASCII, so a
 * hostile string cannot move the cursor, retitle the terminal or hide
 * what follows.
 */
#ifndef STRATA_VMM_TEXT_H
#define STRATA_VMM_TEXT_H

#include <stddef.h>

/*
 * Writes the len bytes at src to dst (cap bytes; NUL-terminated whenever
 * cap > 0) with every byte outside 0x20..0x7e as \xHH and a backslash as
 * \\ (so the output is unambiguous); what does not fit is cut at a whole
 * character or escape and marked "...".  NUL bytes in src are escaped too.
 * Returns dst.
 */
char *text_escape(char *dst, size_t cap, const void *src, size_t len);

#endif /* STRATA_VMM_TEXT_H */
