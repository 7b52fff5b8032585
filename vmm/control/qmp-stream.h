/* SPDX-License-Identifier: MIT */
/*
 * QMP framing: finds where each JSON value of a client's byte stream ends,
 * with the rules of QEMU's JSON streamer (qobject/json-streamer.c): braces
 * and brackets are counted outside strings (escapes honoured), a value ends
 * when both counts are back to zero, so a request may span several lines
 * and several requests may share one.  Top-level scalars end at the next
 * whitespace or structural byte; they are handed on and refused by the
 * server ("must be a JSON object").
 *
 * Errors and resynchronisation, as QEMU's lexer and streamer:
 *   - a byte that cannot occur in JSON text (a control byte other than
 *     tab/CR/LF, any control byte inside a string, 0xFE or 0xFF) drops the
 *     value it is in with one error; inside an object or array the rest of
 *     the line is skipped with it, between values input is skipped up to
 *     the next structural byte ({ } [ ]) or line end, where scanning starts
 *     again (QEMU's lexer recovery; so a client forces a reset by sending
 *     0xFF, as the QMP spec says);
 *   - a value over QMP_MAX_REQUEST bytes, deeper than QMP_MAX_DEPTH or with
 *     more than QMP_MAX_TOKENS tokens gets one error; the rest of it is
 *     skipped up to the next newline (QEMU keeps counting, which can turn
 *     the rest of a huge value into many errors; strata's bounds are much
 *     lower than QEMU's, see qmp.h, so one error and a line-based restart
 *     serve a client better);
 *   - a '}' or ']' that closes more than was opened ends the value there
 *     (the parser then reports it), as in QEMU.
 * Pure: no I/O, no allocation; the caller owns the buffer.
 */
#ifndef STRATA_VMM_CONTROL_QMP_STREAM_H
#define STRATA_VMM_CONTROL_QMP_STREAM_H

#include <stdbool.h>
#include <stddef.h>

typedef enum QmpScanState {
    QMP_SCAN_TOP,     /* between values */
    QMP_SCAN_VALUE,   /* inside an object or array */
    QMP_SCAN_BARE,    /* inside a top-level scalar (number, keyword) */
    QMP_SCAN_STRING,  /* inside a top-level string */
    QMP_SCAN_RECOVER, /* after an invalid byte: to a structural or control byte */
    QMP_SCAN_DISCARD, /* after an over-limit value: to the next newline */
} QmpScanState;

typedef struct QmpScanner {
    QmpScanState state;
    bool in_string, escape; /* QMP_SCAN_VALUE: inside a string, after a backslash */
    int braces, brackets;   /* open '{' and '[' of the value */
    size_t tokens;          /* '{' '[' ',' ':' of the value */
    size_t start;           /* where the value starts in the buffer */
    size_t pos;             /* the next byte to scan */
    size_t max_bytes;       /* limits: QMP_MAX_REQUEST ... (set by qmp_scan_init) */
    unsigned max_depth;
    size_t max_tokens;
    char msg[160]; /* what the last QMP_SCAN_ERROR was */
} QmpScanner;

typedef enum QmpScanResult {
    QMP_SCAN_MORE,  /* the buffer ends inside a value or between values */
    QMP_SCAN_FOUND, /* buf[*start, *end) is one JSON value's text */
    QMP_SCAN_ERROR, /* *why says what; the bytes of the value are dropped */
} QmpScanResult;

/* A scanner between values, with these limits (bytes of one value,
 * nesting depth, tokens). */
void qmp_scan_init(QmpScanner *s, size_t max_bytes, unsigned max_depth, size_t max_tokens);
/* Scans buf[0, len) from where it stopped; the buffer holds the same bytes
 * as before at the same places, plus new ones at the end (after
 * qmp_scan_shift: minus the front it dropped). */
QmpScanResult qmp_scan(QmpScanner *s, const char *buf, size_t len, size_t *start, size_t *end,
                       const char **why);
/* How many bytes at the front of the buffer the scanner no longer needs. */
size_t qmp_scan_done(const QmpScanner *s);
/* The caller dropped n <= qmp_scan_done() bytes from the buffer's front. */
void qmp_scan_shift(QmpScanner *s, size_t n);
/* Whether the scanner is inside a value (its bytes must be kept). */
bool qmp_scan_partial(const QmpScanner *s);
/* The caller dropped the whole buffer in the middle of a value (it could not
 * grow): the rest of the value is skipped to the next newline. */
void qmp_scan_skip_line(QmpScanner *s);
/* At the end of input: the value in progress, if any, is handed on as it is
 * (a top-level scalar is complete; an unterminated object gets the parser's
 * error): its bytes [*start, *end); true if there is one. */
bool qmp_scan_finish(QmpScanner *s, size_t len, size_t *start, size_t *end);

#endif /* STRATA_VMM_CONTROL_QMP_STREAM_H */
