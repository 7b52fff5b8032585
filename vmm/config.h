/* SPDX-License-Identifier: MIT */
/*
 * `strata run` options: command line and JSON config file (same keys).
 * Pure parsing, no side effects besides reading the config file, so it is
 * unit tested without /dev/kvm.
 */
#ifndef STRATA_VMM_CONFIG_H
#define STRATA_VMM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/ratelimit.h"
#include "vmm/log.h"

#define VM_DEFAULT_MEMORY (256ull << 20)
#define VM_MIN_MEMORY (2ull << 20)
#define VM_MAX_MEMORY (1ull << 40)
#define VM_MAX_CMDLINE 4095          /* the whole command line the guest gets (PVH: 4 KiB) */
#define VM_CMDLINE_REBOOT "reboot=k" /* appended unless --cmdline has a reboot= */
#define VM_MAX_CPUS 64
#define VM_MAX_DISKS 8
#define VM_MAX_NETS 4
#define VM_MAX_NAME 255
#define VM_NIL_UUID "00000000-0000-0000-0000-000000000000"

/* --serial: stdio, file=PATH, none, pty, socket=PATH (vmm/chardev.h) */
typedef enum SerialMode {
    SERIAL_STDIO = 0,
    SERIAL_FILE,
    SERIAL_NONE,
    SERIAL_PTY,
    SERIAL_SOCKET
} SerialMode;

/* --seccomp: the per-thread filters' action on a syscall outside the list. */
typedef enum VmSeccomp { VM_SECCOMP_KILL = 0, VM_SECCOMP_LOG, VM_SECCOMP_OFF } VmSeccomp;

typedef struct VmDisk {
    char *path;          /* --disk path=FILE */
    bool readonly;       /* ,readonly=on */
    RateLimitConfig rl;  /* ,bw=,iops=,bw_burst=,iops_burst= (ops: requests) */
    unsigned num_queues; /* ,num-queues=N (1 to VIRTIO_BLK_MAX_QUEUES); 0: not given, 1 */
    bool no_event_idx;   /* ,event_idx=off (QEMU's name): VIRTIO_F_EVENT_IDX not offered */
    bool no_indirect;    /* ,indirect_desc=off: VIRTIO_F_INDIRECT_DESC not offered */
} VmDisk;

typedef struct VmNet {
    char *tap;      /* --net tap=NAME */
    uint8_t mac[6]; /* ,mac=52:54:00:..; else 52:54:00:12:34:(56+n) */
    bool have_mac;
    RateLimitConfig rl; /* ,bw=,pps=,bw_burst=,pps_burst= (ops: packets) */
} VmNet;

/* --balloon[=deflate-on-oom=on,free-page-reporting=on,stats-interval=N] */
typedef struct VmBalloon {
    bool on;                  /* a virtio-balloon device */
    bool deflate_on_oom;      /* VIRTIO_BALLOON_F_DEFLATE_ON_OOM offered */
    bool free_page_reporting; /* VIRTIO_BALLOON_F_REPORTING offered */
    unsigned stats_interval;  /* seconds; 0: no stats queue */
} VmBalloon;

#define VM_MAX_BALLOON_STATS_INTERVAL 86400u
#define VM_METRICS_DEFAULT_INTERVAL 60u /* --metrics: seconds between lines */
#define VM_METRICS_MAX_INTERVAL 86400u

/* --vsock cid=N,uds=PATH */
typedef struct VmVsock {
    uint64_t cid; /* 0: no vsock device; else 3..0xfffffffe */
    char *uds;    /* PATH: listened on; guest connects go to PATH_<port> */
} VmVsock;

#define VM_MAX_VSOCK_UDS 95 /* sun_path (108) less `_<port>` and the NUL */

typedef struct VmConfig {
    char *kernel;               /* --kernel */
    char *initrd;               /* --initrd */
    uint64_t memory;            /* --memory, bytes */
    unsigned cpus;              /* --cpus */
    char *cmdline;              /* --cmdline */
    char *api_socket;           /* --api-socket */
    char *name;                 /* --name, NULL = none */
    char uuid[37];              /* --uuid, lower case; VM_NIL_UUID by default */
    char *incoming;             /* --incoming tcp:HOST:PORT | unix:PATH | file:PATH */
    bool restore;               /* incoming is file:PATH (--restore, a snapshot) */
    bool restore_prefault;      /* --restore PATH,prefault=on */
    SerialMode serial;          /* --serial */
    char *serial_path;          /* --serial file=PATH or socket=PATH */
    bool test_device;           /* --test-device */
    bool verbose;               /* --verbose */
    VmDisk disks[VM_MAX_DISKS]; /* --disk (repeatable) */
    unsigned ndisks;
    VmNet nets[VM_MAX_NETS]; /* --net (repeatable) */
    unsigned nnets;
    bool rng;                  /* --rng: a virtio-rng device */
    VmBalloon balloon;         /* --balloon */
    VmSeccomp seccomp;         /* --seccomp kill|log|off (default kill) */
    long jail_uid;             /* --jail-uid, -1 = none */
    long jail_gid;             /* --jail-gid, -1 = none */
    char *chroot_dir;          /* --chroot */
    LogLevel log_level;        /* --log-level (default LOG_DEFAULT_LEVEL) */
    bool log_level_set;        /* --log-level given */
    char *log_file;            /* --log-file, NULL = stderr */
    bool daemonize;            /* --daemonize */
    char *pidfile;             /* --pidfile */
    char *metrics_path;        /* --metrics PATH, NULL = none */
    unsigned metrics_interval; /* ,interval=SECONDS (1..86400, default 60) */
    VmVsock vsock;             /* --vsock */
    unsigned dirty_ring;       /* --dirty-ring: entries per vCPU, VM_DIRTY_RING_OFF
                                * (the bitmap) or VM_DIRTY_RING_AUTO (default) */
} VmConfig;

/* --dirty-ring auto|off|ENTRIES */
#define VM_DIRTY_RING_OFF 0u
#define VM_DIRTY_RING_AUTO 0xffffffffu /* kvm/'s KVM_DIRTY_RING_AUTO */
#define VM_DIRTY_RING_MIN 256u         /* entries (the kernel wants a page) */
#define VM_DIRTY_RING_MAX 65536u       /* entries (the kernel's limit) */

/* Outcome of vm_config_parse_args. */
enum { CONFIG_OK = 0, CONFIG_HELP = 1, CONFIG_ERROR = -1 };

/* Fills cfg with the defaults (256M, 1 CPU, serial on stdio). */
void vm_config_init(VmConfig *cfg);
/* Frees the strings cfg owns and re-initialises it. */
void vm_config_free(VmConfig *cfg);

/* Bytes strata appends to the --cmdline text `cmdline` (" reboot=k" unless
 * it has a reboot= option; not the virtio_mmio.device= entries of acpi=off,
 * which the machine adds and checks). */
size_t vm_cmdline_appended(const char *cmdline);

/*
 * Parses a size: decimal digits with an optional K/M/G/T suffix (binary
 * units, upper or lower case); a bare number is in MiB, as QEMU's -m.  0 on
 * success, -1 on anything else (hex, a B or other suffix, overflow, junk,
 * empty, a sign or space).
 */
int parse_size(const char *s, uint64_t *out);
/* A byte count: decimal digits (bytes), or parse_size's form with a
 * K/M/G/T suffix.  0 or -1. */
int parse_bytes(const char *s, uint64_t *out);
/* Takes one rate-limit key of --disk (ops_key "iops") or --net ("pps"):
 * bw, bw_burst (bytes, parse_bytes), ops_key, ops_key_burst (decimal
 * counts).  1 if it was one and its value is valid, 0 if key is another
 * key, -1 if the value is not valid. */
int vm_parse_limit_key(RateLimitConfig *rl, const char *ops_key, const char *key, const char *v);
/* A burst given without its rate: the message, else NULL. */
const char *vm_check_limit(const RateLimitConfig *rl, const char *ops_key);

/*
 * Parses `strata run` arguments (argv[0] is the first option, not the
 * program).  A --config file is read first, wherever it appears; options on
 * the command line then override its keys.  Returns CONFIG_OK,
 * CONFIG_HELP (--help seen) or CONFIG_ERROR with one line naming the
 * option and value in err.  Also checks the result (a kernel is required).
 */
int vm_config_parse_args(VmConfig *cfg, int argc, char *const argv[], char *err, size_t errlen);

/* Applies the keys of a JSON object given as text; origin names it in
 * messages.  0 or -1 with err set. */
int vm_config_apply_json(VmConfig *cfg, const char *text, const char *origin, char *err,
                         size_t errlen);

/* Reads and applies a JSON config file.  0 or -1 with err set. */
int vm_config_load_file(VmConfig *cfg, const char *path, char *err, size_t errlen);

/* Checks the combination (kernel given, ...).  0 or -1 with err set. */
int vm_config_check(const VmConfig *cfg, char *err, size_t errlen);

/* Text of `strata run --help`. */
const char *vm_config_usage(void);

#endif /* STRATA_VMM_CONFIG_H */
