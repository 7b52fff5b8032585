/* SPDX-License-Identifier: MIT */
/*
 * virtio-balloon (virtio 1.2, 5.5) over virtio-mmio.  The host sets a
 * target (num_pages: 4 KiB pages it wants the guest to give up); the guest
 * gives pages back through the inflate queue and takes them again through
 * the deflate queue, each buffer an array of 32-bit little-endian page
 * frame numbers, and writes how many it holds to `actual`.
 *
 * Inflate frees the host memory behind each page at once: guest RAM is an
 * anonymous private mapping (memory_region_init_ram), so
 * madvise(MADV_DONTNEED) drops the page and the next guest touch faults in
 * a zeroed one (MADV_REMOVE would be needed only for a shared mapping,
 * which strata's RAM is not; over a --restore snapshot's private file
 * mapping it drops the private copy and the page reads as the file's
 * again).  Deflate is bookkeeping:
 * the pages come back when the guest touches them.
 *
 * Queues (compact numbering, as Linux and QEMU number them): 0 inflateq,
 * 1 deflateq, then statsq if VIRTIO_BALLOON_F_STATS_VQ was negotiated, then
 * the free page reporting queue if VIRTIO_BALLOON_F_REPORTING was.  The
 * statsq buffer is held by the device and handed back every stats interval
 * so the guest refills it.  Reported free pages are discarded like inflated
 * ones but stay the guest's.
 *
 * Hostile input: a PFN outside guest RAM (or in ROM or MMIO) is skipped and
 * counted, with a log line (rate limited); a device-writable inflate or
 * deflate buffer, a buffer whose length is not a multiple of 4, or more
 * than VIRTIO_BALLOON_MAX_PFNS PFNs in one chain break the device
 * (DEVICE_NEEDS_RESET, virtio-mmio.h).
 */
#ifndef STRATA_DEVICES_VIRTIO_BALLOON_H
#define STRATA_DEVICES_VIRTIO_BALLOON_H

#include "devices/virtio-mmio.h"

#define VIRTIO_ID_BALLOON 5
#define VIRTIO_BALLOON_F_STATS_VQ 1
#define VIRTIO_BALLOON_F_DEFLATE_ON_OOM 2
#define VIRTIO_BALLOON_F_REPORTING 5
#define VIRTIO_BALLOON_PFN_SHIFT 12
#define VIRTIO_BALLOON_PAGE_SIZE 4096u
#define VIRTIO_BALLOON_CONFIG_LEN 8            /* num_pages, actual */
#define VIRTIO_BALLOON_MAX_PFNS 65536u         /* per chain; Linux sends 256 */
#define VIRTIO_BALLOON_S_NR 16                 /* stats tags 0..15 (Linux's) */
#define VIRTIO_BALLOON_STATE_MAGIC 0x4c4c4256u /* "VBLL" */
#define VIRTIO_BALLOON_STATE_VERSION 1

/* Queue roles (which index each has depends on the features). */
enum { BALLOON_Q_INFLATE, BALLOON_Q_DEFLATE, BALLOON_Q_STATS, BALLOON_Q_REPORTING, BALLOON_Q_NONE };

/* What the device offers. */
typedef struct VirtioBalloonOptions {
    bool deflate_on_oom;       /* VIRTIO_BALLOON_F_DEFLATE_ON_OOM */
    bool free_page_reporting;  /* VIRTIO_BALLOON_F_REPORTING and its queue */
    unsigned stats_interval_s; /* > 0: VIRTIO_BALLOON_F_STATS_VQ, polled this often */
} VirtioBalloonOptions;

typedef struct VirtioBalloon {
    VirtioMmio t; /* first: the transport */
    VirtioBalloonOptions opt;
    uint8_t config[VIRTIO_BALLOON_CONFIG_LEN];
    uint32_t num_pages; /* the host's target (config) */
    uint32_t actual;    /* what the guest says it holds (config) */
    int change_fd;      /* eventfd: written when actual changes */
    int stats_timer;    /* timerfd of the stats interval, or -1 */
    bool stats_held;    /* the guest's stats buffer is with the device */
    uint16_t stats_head;
    uint32_t stats_valid; /* bit n: stats[n] was reported */
    uint64_t stats[VIRTIO_BALLOON_S_NR];
    uint64_t stats_updated; /* CLOCK_REALTIME seconds of the last report, 0 = never */
    VirtqElem elem;
    /* statistics (not saved but inflated_pages) */
    uint64_t inflated_pages; /* inflated and not deflated since */
    uint64_t bad_pfns;       /* PFNs outside RAM, skipped */
    uint64_t reported_bytes; /* free page reporting: bytes discarded */
} VirtioBalloon;

/* A consistent copy of the guest-visible figures (virtio_balloon_info). */
typedef struct VirtioBalloonInfo {
    uint32_t num_pages, actual;
    uint64_t inflated_pages, bad_pfns, reported_bytes;
    uint32_t stats_valid;
    uint64_t stats[VIRTIO_BALLOON_S_NR];
    uint64_t stats_updated;
} VirtioBalloonInfo;

/* What a virtio-balloon saves (section VIRTIO_BALLOON_STATE_MAGIC,
 * virtio_balloon_state_section): the transport, the target and actual,
 * the pages inflated, the held stats buffer and the last stats (not when
 * they came: a loaded device dates them at the load). */
typedef struct VirtioBalloonStateData {
    VirtioMmioStateData t;
    uint32_t num_pages, actual;
    uint64_t inflated_pages;
    uint8_t stats_held; /* 0 or 1 */
    uint16_t stats_head;
    uint32_t stats_valid;
    uint64_t stats[VIRTIO_BALLOON_S_NR];
} VirtioBalloonStateData;

/* Its section: magic, version and field table. */
extern const StateSection virtio_balloon_state_section;

/* Sets up the device (env as for virtio_mmio_init; opt NULL: nothing
 * optional); 0 or -errno. */
int virtio_balloon_init(VirtioBalloon *d, const VirtioEnv *env, const VirtioBalloonOptions *opt);
/* Frees what init made (unmap the region first). */
void virtio_balloon_destroy(VirtioBalloon *d);
/* Sets the target: the guest is asked to hold num_pages 4 KiB pages (a
 * config-change interrupt).  Any thread. */
void virtio_balloon_set_target(VirtioBalloon *d, uint32_t num_pages);
/* The current figures.  Any thread. */
void virtio_balloon_info(VirtioBalloon *d, VirtioBalloonInfo *out);
/* An eventfd that becomes readable when the guest changes `actual` (read
 * it to clear it); for the VMM's event loop. */
int virtio_balloon_change_fd(const VirtioBalloon *d);
/* Hands the guest's stats buffer back now (it refills it); false if the
 * device does not hold one.  Any thread. */
bool virtio_balloon_request_stats(VirtioBalloon *d);
/* QEMU's name of stats tag n ("stat-free-memory"), or NULL. */
const char *virtio_balloon_stat_name(unsigned n);

/* Reset, save, load and destroy for a board's device list (devices/device.h). */
extern const DeviceOps virtio_balloon_device_ops;

#endif /* STRATA_DEVICES_VIRTIO_BALLOON_H */
