/* SPDX-License-Identifier: MIT */
/*
 * State streams: a growable little-endian writer and a bounds-checked
 * reader, plus self-describing sections (magic, version, length, CRC-32) so
 * that a device's save/load can reject streams that are truncated, corrupt,
 * from an unknown device or from a newer version.  Pure serialization, no
 * knowledge of regions, KVM or devices: it sits in memory/, the bottom
 * layer, so that devices/, kvm/ and vmm/ may all use it (built as its own
 * library, strata_stream, whose CRC, zlib's, comes from ISA-L).
 *
 * Section layout (all little endian):
 *   u32 magic | u16 version | u16 flags (0) | u32 payload length |
 *   payload | u32 CRC-32 (IEEE) of everything before it in the section
 */
#ifndef STRATA_MEMORY_STATE_STREAM_H
#define STRATA_MEMORY_STATE_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct StateWriter {
    uint8_t *buf;
    size_t len, cap;
    bool failed; /* an allocation failed; the stream is unusable */
} StateWriter;

typedef struct StateReader {
    const uint8_t *buf;
    size_t len, pos;
    bool failed; /* a read went past the end */
} StateReader;

/* An empty writer. */
void state_writer_init(StateWriter *w);
/* Frees the writer's buffer. */
void state_writer_free(StateWriter *w);
/* Appends little-endian integers / raw bytes (sets failed on ENOMEM). */
void state_put_u8(StateWriter *w, uint8_t v);
void state_put_u16(StateWriter *w, uint16_t v);
void state_put_u32(StateWriter *w, uint32_t v);
void state_put_u64(StateWriter *w, uint64_t v);
void state_put_bytes(StateWriter *w, const void *p, size_t n);
/* Hands the written bytes to the caller (*buf to free()), or frees them and
 * returns -ENOMEM if any append failed. */
int state_writer_finish(StateWriter *w, uint8_t **buf, size_t *len);
/* Starts a section; returns a cookie for state_section_end. */
size_t state_section_begin(StateWriter *w, uint32_t magic, uint16_t version);
/* Fills in the section's length and appends its CRC. */
void state_section_end(StateWriter *w, size_t cookie);

/* A reader over [buf, buf+len) (not copied). */
void state_reader_init(StateReader *r, const void *buf, size_t len);
/* Reads little-endian integers / raw bytes; past the end they return 0 and
 * set r->failed (so a parse may check once at the end). */
uint8_t state_get_u8(StateReader *r);
uint16_t state_get_u16(StateReader *r);
uint32_t state_get_u32(StateReader *r);
uint64_t state_get_u64(StateReader *r);
bool state_get_bytes(StateReader *r, void *p, size_t n);
/* True if every byte was consumed and no read failed. */
bool state_reader_done(const StateReader *r);

/*
 * Opens the next section of r: checks the magic, that 1 <= version <=
 * max_version, the flags, that the payload lies inside r and the CRC.  On
 * success sets *version and *payload (a reader over the payload only) and
 * advances r past the section; returns 0.  Otherwise returns -EINVAL
 * (wrong magic / version / flags / CRC) or -ENODATA (truncated) and, if
 * err is not NULL, writes a one-line reason there.
 */
int state_section_open(StateReader *r, uint32_t magic, uint16_t max_version, uint16_t *version,
                       StateReader *payload, char *err, size_t errlen);

/* Writes the printf-style reason into err (unless err is NULL or errlen 0)
 * and returns code: how the state code refuses something. */
int state_fail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* CRC-32 (IEEE 802.3, as zlib's crc32) of n bytes. */
uint32_t state_crc32(const void *p, size_t n);
/* The CRC-32 of (the bytes crc was computed over) followed by [p, p+n):
 * state_crc32_update(state_crc32(a, x), b, y) == CRC of a..b. */
uint32_t state_crc32_update(uint32_t crc, const void *p, size_t n);

#endif /* STRATA_MEMORY_STATE_STREAM_H */
