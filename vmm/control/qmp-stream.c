/* SPDX-License-Identifier: MIT */
/* QMP framing: where each JSON value of a stream ends (see qmp-stream.h). */
#include "vmm/control/qmp-stream.h"

#include <stdint.h>
#include <stdio.h>

void qmp_scan_init(QmpScanner *s, size_t max_bytes, unsigned max_depth, size_t max_tokens)
{
    *s = (QmpScanner){ .state = QMP_SCAN_TOP,
                       .max_bytes = max_bytes,
                       .max_depth = max_depth,
                       .max_tokens = max_tokens };
}

static bool is_space(unsigned char b)
{
    return b == ' ' || b == '\t' || b == '\r' || b == '\n';
}

static bool is_structural(unsigned char b)
{
    return b == '{' || b == '}' || b == '[' || b == ']';
}

/* A byte no JSON text holds outside a string: a control byte other than
 * whitespace, or one that never occurs in UTF-8. */
static bool is_invalid(unsigned char b)
{
    return (b < 0x20 && !is_space(b)) || b == 0xfe || b == 0xff;
}

/* Inside a string every control byte is invalid, whitespace included. */
static bool is_invalid_in_string(unsigned char b)
{
    return b < 0x20 || b == 0xfe || b == 0xff;
}

static void begin_value(QmpScanner *s, QmpScanState st)
{
    s->state = st;
    s->start = s->pos;
    s->in_string = s->escape = false;
    s->braces = s->brackets = 0;
    s->tokens = 0;
}

static QmpScanResult found(QmpScanner *s, size_t *start, size_t *end)
{
    *start = s->start;
    *end = s->pos;
    s->state = QMP_SCAN_TOP;
    return QMP_SCAN_FOUND;
}

/* An invalid byte: the byte is consumed and the value it is in dropped.
 * Inside an object or array the rest of the line goes too (what follows is
 * the rest of the broken value); between values input is skipped to a
 * bracket or a line end, where JSON can start again (QEMU's lexer). */
static QmpScanResult invalid(QmpScanner *s, unsigned char ch, const char **why)
{
    bool in_value = s->state == QMP_SCAN_VALUE;
    s->pos++;
    s->state = in_value && ch != '\n' ? QMP_SCAN_DISCARD : QMP_SCAN_RECOVER;
    snprintf(s->msg, sizeof(s->msg),
             "JSON parse error, invalid byte 0x%02x (a control character or 0xFE/0xFF); "
             "input skipped to the next %s",
             (unsigned char)ch, in_value ? "line" : "bracket or line end");
    *why = s->msg;
    return QMP_SCAN_ERROR;
}

/* A value over a limit: the rest of it is skipped to the next newline. */
static QmpScanResult over(QmpScanner *s, const char **why, const char *what, size_t limit,
                          const char *unit)
{
    s->state = QMP_SCAN_DISCARD;
    snprintf(s->msg, sizeof(s->msg), "QMP request %s %zu%s; the rest of it skipped to the line end",
             what, limit, unit);
    *why = s->msg;
    return QMP_SCAN_ERROR;
}

QmpScanResult qmp_scan(QmpScanner *s, const char *buf, size_t len, size_t *start, size_t *end,
                       const char **why)
{
    const unsigned char *b = (const unsigned char *)buf;
    while (s->pos < len) {
        unsigned char ch = b[s->pos];
        if (qmp_scan_partial(s) && s->pos - s->start >= s->max_bytes)
            return over(s, why, "exceeds", s->max_bytes, " bytes");
        switch (s->state) {
        case QMP_SCAN_DISCARD:
            s->pos++;
            if (ch == '\n')
                s->state = QMP_SCAN_TOP;
            continue;
        case QMP_SCAN_RECOVER:
            if (is_structural(ch) || ch == '\n' || ch == '\r')
                s->state = QMP_SCAN_TOP; /* look at it again from the top */
            else
                s->pos++;
            continue;
        case QMP_SCAN_TOP:
            if (is_space(ch)) {
                s->pos++;
            } else if (is_invalid(ch)) {
                return invalid(s, ch, why);
            } else if (ch == '}' || ch == ']') {
                begin_value(s, QMP_SCAN_VALUE); /* a stray close: the parser says so */
                s->pos++;
                return found(s, start, end);
            } else if (ch == '{' || ch == '[') {
                begin_value(s, QMP_SCAN_VALUE);
            } else if (ch == '"') {
                begin_value(s, QMP_SCAN_STRING);
                s->pos++;
            } else {
                begin_value(s, QMP_SCAN_BARE);
            }
            continue;
        case QMP_SCAN_BARE:
            if (is_space(ch) || is_structural(ch) || ch == '"' || is_invalid(ch))
                return found(s, start, end); /* the byte is looked at again */
            s->pos++;
            continue;
        case QMP_SCAN_STRING:
            if (is_invalid_in_string(ch))
                return invalid(s, ch, why);
            s->pos++;
            if (s->escape)
                s->escape = false;
            else if (ch == '\\')
                s->escape = true;
            else if (ch == '"')
                return found(s, start, end);
            continue;
        case QMP_SCAN_VALUE:
            break;
        }
        /* inside an object or array */
        if (s->in_string) {
            if (is_invalid_in_string(ch))
                return invalid(s, ch, why);
            s->pos++;
            if (s->escape)
                s->escape = false;
            else if (ch == '\\')
                s->escape = true;
            else if (ch == '"')
                s->in_string = false;
            continue;
        }
        if (is_invalid(ch))
            return invalid(s, ch, why);
        s->pos++;
        switch (ch) {
        case '"':
            s->in_string = true;
            continue;
        case '{':
        case '[':
            if (ch == '{')
                s->braces++;
            else
                s->brackets++;
            if ((unsigned)(s->braces + s->brackets) > s->max_depth)
                return over(s, why, "nesting depth exceeds", s->max_depth, "");
            /* fall through */
        case ',':
        case ':':
            if (++s->tokens > s->max_tokens)
                return over(s, why, "exceeds", s->max_tokens, " JSON tokens");
            continue;
        case '}':
            s->braces--;
            break;
        case ']':
            s->brackets--;
            break;
        default:
            continue;
        }
        /* a close: the value ends when nothing is open, or when this closed
         * more than was opened (QEMU's streamer hands that to the parser) */
        if ((s->braces == 0 && s->brackets == 0) || s->braces < 0 || s->brackets < 0)
            return found(s, start, end);
    }
    return QMP_SCAN_MORE;
}

bool qmp_scan_partial(const QmpScanner *s)
{
    return s->state == QMP_SCAN_VALUE || s->state == QMP_SCAN_BARE || s->state == QMP_SCAN_STRING;
}

size_t qmp_scan_done(const QmpScanner *s)
{
    return qmp_scan_partial(s) ? s->start : s->pos;
}

void qmp_scan_shift(QmpScanner *s, size_t n)
{
    s->pos -= n;
    if (qmp_scan_partial(s))
        s->start -= n;
}

void qmp_scan_skip_line(QmpScanner *s)
{
    s->state = QMP_SCAN_DISCARD;
    s->pos = s->start = 0;
}

bool qmp_scan_finish(QmpScanner *s, size_t len, size_t *start, size_t *end)
{
    if (!qmp_scan_partial(s) || s->start >= len)
        return false;
    *start = s->start;
    *end = len;
    s->pos = len;
    s->state = QMP_SCAN_TOP;
    return true;
}
