/* SPDX-License-Identifier: MIT */
/* `strata run` options (see config.h). */
#include "vmm/config.h"
#include "devices/virtio-blk.h"

#include "vmm/text.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* An apply function returns NULL or the reason the value is bad. */
typedef const char *(*ApplyFn)(VmConfig *cfg, const char *val);

/* OPT_OPTVALUE: a flag that may take a value (--opt, --opt=V, or --opt V
 * when V does not start with '-'); apply gets "" without one, and flag
 * names the bool a JSON false clears. */
typedef enum { OPT_VALUE, OPT_FLAG, OPT_TODO, OPT_CONFIG, OPT_HELP, OPT_OPTVALUE } OptKind;

typedef struct OptDef {
    const char *name;
    OptKind kind;
    ApplyFn apply;             /* OPT_VALUE, OPT_OPTVALUE */
    bool *(*flag)(VmConfig *); /* OPT_FLAG, OPT_OPTVALUE */
    bool numeric;              /* JSON integers accepted (as text) */
} OptDef;

/* Outside text (an argument, a config file's key or value) for a message:
 * escaped (vmm/text.h), about 80 characters at most. */
typedef struct Quoted {
    char s[84];
} Quoted;

static Quoted quote(const char *text, size_t len)
{
    Quoted q;
    text_escape(q.s, sizeof(q.s), text, len);
    return q;
}

static const char *set_str(char **dst, const char *val)
{
    char *c = strdup(val);
    if (!c)
        return "out of memory";
    free(*dst);
    *dst = c;
    return NULL;
}

static const char *apply_kernel(VmConfig *cfg, const char *val)
{
    if (!*val)
        return "empty path";
    return set_str(&cfg->kernel, val);
}

int parse_size(const char *s, uint64_t *out)
{
    /* decimal digits only: no sign, space or 0x (0x4000000B would read as hex) */
    if (!s || !isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -1;
    unsigned shift = 20; /* bare number: MiB */
    if (*end) {
        switch (*end) {
        case 'K':
        case 'k':
            shift = 10;
            break;
        case 'M':
        case 'm':
            shift = 20;
            break;
        case 'G':
        case 'g':
            shift = 30;
            break;
        case 'T':
        case 't':
            shift = 40;
            break;
        default:
            return -1;
        }
        if (end[1])
            return -1;
    }
    if (v > (UINT64_MAX >> shift))
        return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

int parse_bytes(const char *s, uint64_t *out)
{
    if (!s || !isdigit((unsigned char)*s))
        return -1;
    if (s[strspn(s, "0123456789")])
        return parse_size(s, out);
    errno = 0;
    unsigned long long v = strtoull(s, NULL, 10);
    if (errno)
        return -1;
    *out = v;
    return 0;
}

/* Decimal digits only; 0 or -1. */
static int parse_count(const char *s, uint64_t *out)
{
    if (!s || !*s || s[strspn(s, "0123456789")])
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, NULL, 10);
    if (errno)
        return -1;
    *out = v;
    return 0;
}

int vm_parse_limit_key(RateLimitConfig *rl, const char *ops_key, const char *key, const char *v)
{
    size_t ol = strlen(ops_key);
    if (!strcmp(key, "bw"))
        return parse_bytes(v, &rl->bw) < 0 ? -1 : 1;
    if (!strcmp(key, "bw_burst"))
        return parse_bytes(v, &rl->bw_burst) < 0 ? -1 : 1;
    if (!strcmp(key, ops_key))
        return parse_count(v, &rl->ops) < 0 ? -1 : 1;
    if (!strncmp(key, ops_key, ol) && !strcmp(key + ol, "_burst"))
        return parse_count(v, &rl->ops_burst) < 0 ? -1 : 1;
    return 0;
}

const char *vm_check_limit(const RateLimitConfig *rl, const char *ops_key)
{
    if (rl->bw_burst && !rl->bw)
        return "bw_burst needs bw";
    if (rl->ops_burst && !rl->ops)
        return !strcmp(ops_key, "pps") ? "pps_burst needs pps" : "iops_burst needs iops";
    return NULL;
}

static const char *apply_memory(VmConfig *cfg, const char *val)
{
    uint64_t v;
    if (parse_size(val, &v) < 0)
        return "invalid size (expected a decimal number with an optional K/M/G/T suffix, "
               "e.g. 256M; a bare number is MiB)";
    if (v < VM_MIN_MEMORY)
        return "too small (the minimum is 2M)";
    if (v > VM_MAX_MEMORY)
        return "too large (the maximum is 1T)";
    if (v % 4096)
        return "not a multiple of 4K";
    cfg->memory = v;
    return NULL;
}

static const char *apply_cpus(VmConfig *cfg, const char *val)
{
    if (!*val || !isdigit((unsigned char)*val))
        return "invalid number of vCPUs";
    errno = 0;
    char *end;
    unsigned long v = strtoul(val, &end, 10);
    if (errno || *end)
        return "invalid number of vCPUs";
    if (v == 0)
        return "at least one vCPU is needed";
    if (v > VM_MAX_CPUS)
        return "too many vCPUs (the maximum is 64)";
    cfg->cpus = (unsigned)v;
    return NULL;
}

static const char *apply_initrd(VmConfig *cfg, const char *val)
{
    if (!*val)
        return "empty path";
    return set_str(&cfg->initrd, val);
}

size_t vm_cmdline_appended(const char *cmdline)
{
    const char *c = cmdline ? cmdline : "";
    if (!strncmp(c, "reboot=", 7) || strstr(c, " reboot=") != NULL)
        return 0;
    return (*c ? 1 : 0) + strlen(VM_CMDLINE_REBOOT);
}

static const char *apply_cmdline(VmConfig *cfg, const char *val)
{
    _Static_assert(VM_MAX_CMDLINE == 4095, "the message below names the limit");
    if (strlen(val) + vm_cmdline_appended(val) > VM_MAX_CMDLINE)
        return vm_cmdline_appended(val)
                   ? "too long: with the \" " VM_CMDLINE_REBOOT "\" strata appends (unless "
                     "the command line has a reboot= option) the maximum is 4095 bytes, so "
                     "4086 for the text given"
                   : "too long (the maximum is 4095 bytes)";
    return set_str(&cfg->cmdline, val);
}

static const char *apply_api_socket(VmConfig *cfg, const char *val)
{
    if (!*val)
        return "empty path";
    if (strlen(val) >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return "path too long for a unix socket (the maximum is 107 bytes)";
    return set_str(&cfg->api_socket, val);
}

static const char *apply_incoming(VmConfig *cfg, const char *val)
{
    if (cfg->incoming)
        return "only one of --incoming and --restore, once";
    if (!strcmp(val, "defer")) {
        /* the URI comes later, through QMP migrate-incoming */
    } else if (!strncmp(val, "file:", 5)) {
        if (!val[5] || strlen(val + 5) >= 4096)
            return "file:PATH needs a path (under 4096 bytes)";
        cfg->restore = true;
    } else if (!strncmp(val, "unix:", 5)) {
        if (!val[5] || strlen(val + 5) >= sizeof(((struct sockaddr_un *)0)->sun_path))
            return "unix:PATH needs a path of 1..107 bytes";
    } else if (!strncmp(val, "tcp:", 4)) {
        const char *colon = strrchr(val + 4, ':');
        char *end = NULL;
        long port = colon ? strtol(colon + 1, &end, 10) : 0;
        if (!colon || colon == val + 4 || !colon[1] || *end || port < 1 || port > 65535)
            return "expected tcp:HOST:PORT (port 1..65535)";
    } else {
        return "expected tcp:HOST:PORT, unix:PATH, file:PATH or defer";
    }
    return set_str(&cfg->incoming, val);
}

/* --restore PATH[,prefault=on|off]: --incoming file:PATH. */
static const char *apply_restore(VmConfig *cfg, const char *val)
{
    const char *comma = strrchr(val, ',');
    size_t len = strlen(val);
    if (comma && !strncmp(comma + 1, "prefault=", 9)) {
        if (!strcmp(comma + 10, "on"))
            cfg->restore_prefault = true;
        else if (strcmp(comma + 10, "off"))
            return "prefault=on or prefault=off";
        len = (size_t)(comma - val);
    }
    if (!len || len >= 4096)
        return "expected PATH[,prefault=on] (a path under 4096 bytes)";
    char uri[4101];
    snprintf(uri, sizeof(uri), "file:%.*s", (int)len, val);
    return apply_incoming(cfg, uri);
}

static const char *apply_name(VmConfig *cfg, const char *val)
{
    if (!*val)
        return "empty name";
    if (strlen(val) > VM_MAX_NAME)
        return "too long (the maximum is 255 bytes)";
    json_t *j = json_string(val); /* QMP query-name sends it as JSON text */
    if (!j)
        return "not valid UTF-8";
    json_decref(j);
    return set_str(&cfg->name, val);
}

static const char *apply_uuid(VmConfig *cfg, const char *val)
{
    static const char why[] = "invalid UUID (expected 8-4-4-4-12 hex digits, "
                              "e.g. 6ba7b810-9dad-11d1-80b4-00c04fd430c8)";
    if (strlen(val) != 36)
        return why;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? val[i] != '-' : !isxdigit((unsigned char)val[i]))
            return why;
    }
    for (int i = 0; i < 36; i++)
        cfg->uuid[i] = (char)tolower((unsigned char)val[i]);
    cfg->uuid[36] = '\0';
    return NULL;
}

static const char *apply_serial(VmConfig *cfg, const char *val)
{
    if (!strcmp(val, "stdio")) {
        cfg->serial = SERIAL_STDIO;
    } else if (!strcmp(val, "none")) {
        cfg->serial = SERIAL_NONE;
    } else if (!strncmp(val, "file=", 5)) {
        if (!val[5])
            return "empty file name";
        const char *e = set_str(&cfg->serial_path, val + 5);
        if (e)
            return e;
        cfg->serial = SERIAL_FILE;
    } else if (!strcmp(val, "pty")) {
        cfg->serial = SERIAL_PTY;
    } else if (!strncmp(val, "socket=", 7)) {
        if (!val[7])
            return "empty socket path";
        if (strlen(val + 7) >= 108) /* sockaddr_un's sun_path */
            return "socket path too long (at most 107 bytes)";
        const char *e = set_str(&cfg->serial_path, val + 7);
        if (e)
            return e;
        cfg->serial = SERIAL_SOCKET;
    } else {
        return "expected stdio, file=PATH, pty, socket=PATH or none";
    }
    return NULL;
}

/* "key=value,key=value": the next pair of *p (advanced); false at the end.
 * In a value ",," stands for one comma, as in QEMU's options, so a path
 * may hold commas.  A key or value too long for its buffer empties the key
 * (reported as unknown). */
static bool next_kv(const char **p, char *key, size_t klen, char *val, size_t vlen)
{
    const char *s = *p;
    if (!*s)
        return false;
    size_t kn = strcspn(s, "=,");
    bool too_long = kn >= klen;
    snprintf(key, klen, "%.*s", (int)(too_long ? klen - 1 : kn), s);
    s += kn;
    size_t vn = 0;
    if (*s == '=') {
        for (s++; *s && (*s != ',' || s[1] == ','); s++) {
            if (*s == ',')
                s++; /* ",," is one comma */
            if (vn + 1 < vlen)
                val[vn++] = *s;
            else
                too_long = true;
        }
    }
    val[vn] = '\0';
    if (*s == ',')
        s++;
    if (too_long)
        key[0] = '\0';
    *p = s;
    return true;
}

static const char *apply_disk(VmConfig *cfg, const char *val)
{
    static const char usage[] = "expected path=FILE[,readonly=on|off][,num-queues=N]"
                                "[,bw=BYTES_PER_S][,iops=N][,bw_burst=BYTES][,iops_burst=N]"
                                "[,event_idx=on|off][,indirect_desc=on|off]";
    char key[16], v[4096];
    const char *p = val;
    VmDisk d = { 0 };
    if (cfg->ndisks >= VM_MAX_DISKS)
        return "too many disks (the maximum is 8)";
    while (next_kv(&p, key, sizeof(key), v, sizeof(v))) {
        int lim = vm_parse_limit_key(&d.rl, "iops", key, v);
        if (lim > 0)
            continue;
        if (!lim && !strcmp(key, "path") && v[0]) {
            free(d.path);
            if (!(d.path = strdup(v)))
                return "out of memory";
        } else if (!lim && !strcmp(key, "readonly") && (!strcmp(v, "on") || !strcmp(v, "off"))) {
            d.readonly = !strcmp(v, "on");
        } else if (!lim && !strcmp(key, "event_idx") && (!strcmp(v, "on") || !strcmp(v, "off"))) {
            d.no_event_idx = !strcmp(v, "off");
        } else if (!lim && !strcmp(key, "indirect_desc") &&
                   (!strcmp(v, "on") || !strcmp(v, "off"))) {
            d.no_indirect = !strcmp(v, "off");
        } else if (!lim && !strcmp(key, "num-queues")) {
            uint64_t n;
            if (parse_count(v, &n) < 0 || n < 1 || n > VIRTIO_BLK_MAX_QUEUES) {
                free(d.path);
                return "invalid num-queues (expected a decimal count from 1 to 16: the disk's "
                       "virtio request queues)";
            }
            d.num_queues = (unsigned)n;
        } else {
            free(d.path);
            return lim < 0 ? "invalid rate limit (bw, bw_burst: bytes with an optional K/M/G/T "
                             "suffix; iops, iops_burst: a decimal count)"
                           : usage;
        }
    }
    const char *why = vm_check_limit(&d.rl, "iops");
    if (!d.path || why) {
        free(d.path);
        return why ? why : usage;
    }
    cfg->disks[cfg->ndisks++] = d;
    return NULL;
}

static int hexdig(char c)
{
    return isxdigit((unsigned char)c)
               ? (isdigit((unsigned char)c) ? c - '0' : tolower((unsigned char)c) - 'a' + 10)
               : -1;
}

static const char *apply_net(VmConfig *cfg, const char *val)
{
    static const char net_usage[] = "expected tap=NAME[,mac=52:54:00:12:34:56][,bw=BYTES_PER_S]"
                                    "[,pps=N][,bw_burst=BYTES][,pps_burst=N] (NAME up to 15 bytes)";
    char key[16], v[64] = { 0 }; /* (the analyzer cannot see next_kv ends it) */
    const char *p = val;
    VmNet n;
    memset(&n, 0, sizeof(n));
    if (cfg->nnets >= VM_MAX_NETS)
        return "too many network devices (the maximum is 4)";
    while (next_kv(&p, key, sizeof(key), v, sizeof(v))) {
        int lim = vm_parse_limit_key(&n.rl, "pps", key, v);
        if (lim < 0) {
            free(n.tap);
            return "invalid rate limit (bw, bw_burst: bytes with an optional K/M/G/T suffix; "
                   "pps, pps_burst: a decimal count)";
        }
        if (lim > 0)
            continue;
        if (!strcmp(key, "tap") && v[0] && strlen(v) < 16) {
            free(n.tap);
            if (!(n.tap = strdup(v)))
                return "out of memory";
        } else if (!strcmp(key, "mac") && strlen(v) == 17) {
            for (int i = 0; i < 6; i++) {
                int hi = hexdig(v[3 * i]), lo = hexdig(v[3 * i + 1]);
                if (hi < 0 || lo < 0 || (i < 5 && v[3 * i + 2] != ':')) {
                    free(n.tap);
                    return "invalid mac (expected 6 hex bytes like 52:54:00:12:34:56)";
                }
                n.mac[i] = (uint8_t)(hi << 4 | lo);
            }
            if (n.mac[0] & 1) {
                free(n.tap);
                return "mac is a multicast address";
            }
            n.have_mac = true;
        } else {
            free(n.tap);
            return net_usage;
        }
    }
    const char *why = vm_check_limit(&n.rl, "pps");
    if (!n.tap || why) {
        free(n.tap);
        return why ? why : net_usage;
    }
    if (!n.have_mac) {
        static const uint8_t def[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
        memcpy(n.mac, def, 6);
        n.mac[5] = (uint8_t)(0x56 + cfg->nnets);
    }
    cfg->nets[cfg->nnets++] = n;
    return NULL;
}

static const char *apply_balloon(VmConfig *cfg, const char *val)
{
    static const char usage[] = "expected [deflate-on-oom=on|off][,free-page-reporting=on|off]"
                                "[,stats-interval=SECONDS] (0..86400; 0: no stats queue)";
    char key[32], v[32];
    const char *p = val;
    VmBalloon b = { .on = true };
    while (next_kv(&p, key, sizeof(key), v, sizeof(v))) {
        bool onoff = !strcmp(v, "on") || !strcmp(v, "off");
        if (!strcmp(key, "deflate-on-oom") && onoff) {
            b.deflate_on_oom = !strcmp(v, "on");
        } else if (!strcmp(key, "free-page-reporting") && onoff) {
            b.free_page_reporting = !strcmp(v, "on");
        } else if (!strcmp(key, "stats-interval") && isdigit((unsigned char)v[0])) {
            char *end;
            errno = 0;
            unsigned long n = strtoul(v, &end, 10);
            if (errno || *end || n > VM_MAX_BALLOON_STATS_INTERVAL)
                return usage;
            b.stats_interval = (unsigned)n;
        } else {
            return usage;
        }
    }
    cfg->balloon = b;
    return NULL;
}

/* PATH[,interval=SECONDS]: ",," in PATH stands for a comma. */
static const char *apply_metrics(VmConfig *cfg, const char *val)
{
    static const char usage[] = "expected PATH[,interval=SECONDS] (1..86400)";
    size_t len = strlen(val);
    char *path = malloc(len + 1);
    if (!path)
        return "out of memory";
    size_t n = 0;
    const char *p = val;
    for (; *p && (*p != ',' || p[1] == ','); p++) {
        if (*p == ',')
            p++;
        path[n++] = *p;
    }
    path[n] = '\0';
    if (*p == ',')
        p++;
    unsigned interval = VM_METRICS_DEFAULT_INTERVAL;
    char key[16], v[32];
    while (n && next_kv(&p, key, sizeof(key), v, sizeof(v))) {
        char *end;
        errno = 0;
        unsigned long x = isdigit((unsigned char)v[0]) ? strtoul(v, &end, 10) : 0;
        if (strcmp(key, "interval") || !x || errno || *end || x > VM_METRICS_MAX_INTERVAL) {
            free(path);
            return usage;
        }
        interval = (unsigned)x;
    }
    if (!n) {
        free(path);
        return usage;
    }
    free(cfg->metrics_path);
    cfg->metrics_path = path;
    cfg->metrics_interval = interval;
    return NULL;
}

static const char *apply_vsock(VmConfig *cfg, const char *val)
{
    static const char usage[] = "expected cid=N,uds=PATH (N from 3 to 4294967294, PATH up to "
                                "95 bytes)";
    char key[16], v[128];
    const char *p = val;
    VmVsock o = { 0, NULL };
    while (next_kv(&p, key, sizeof(key), v, sizeof(v))) {
        if (!strcmp(key, "cid") && isdigit((unsigned char)v[0])) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(v, &end, 10);
            if (errno || *end || n < 3 || n > 0xfffffffeull) {
                free(o.uds);
                return usage;
            }
            o.cid = n;
        } else if (!strcmp(key, "uds") && v[0] && strlen(v) <= VM_MAX_VSOCK_UDS) {
            free(o.uds);
            if (!(o.uds = strdup(v)))
                return "out of memory";
        } else {
            free(o.uds);
            return usage;
        }
    }
    if (!o.cid || !o.uds) {
        free(o.uds);
        return usage;
    }
    free(cfg->vsock.uds);
    cfg->vsock = o;
    return NULL;
}

static const char *apply_dirty_ring(VmConfig *cfg, const char *val)
{
    const char *usage = "expected auto, off or a number of entries (a power of two from 256 to "
                        "65536)";
    if (!strcmp(val, "auto")) {
        cfg->dirty_ring = VM_DIRTY_RING_AUTO;
        return NULL;
    }
    if (!strcmp(val, "off")) {
        cfg->dirty_ring = VM_DIRTY_RING_OFF;
        return NULL;
    }
    if (!*val || !isdigit((unsigned char)*val))
        return usage;
    errno = 0;
    char *end;
    unsigned long v = strtoul(val, &end, 10);
    if (errno || *end || v < VM_DIRTY_RING_MIN || v > VM_DIRTY_RING_MAX || (v & (v - 1)))
        return usage;
    cfg->dirty_ring = (unsigned)v;
    return NULL;
}

static const char *apply_seccomp(VmConfig *cfg, const char *val)
{
    if (!strcmp(val, "kill"))
        cfg->seccomp = VM_SECCOMP_KILL;
    else if (!strcmp(val, "log"))
        cfg->seccomp = VM_SECCOMP_LOG;
    else if (!strcmp(val, "off"))
        cfg->seccomp = VM_SECCOMP_OFF;
    else
        return "expected kill, log or off";
    return NULL;
}

/* A uid or gid: decimal, 0..2^32-2 (-1 is "none" to the kernel). */
static const char *parse_id(const char *val, long *out)
{
    if (!*val || !isdigit((unsigned char)*val))
        return "expected a decimal number";
    errno = 0;
    char *end;
    unsigned long v = strtoul(val, &end, 10);
    if (errno || *end || v >= 0xffffffffUL)
        return "expected a decimal number below 4294967295";
    *out = (long)v;
    return NULL;
}

static const char *apply_jail_uid(VmConfig *cfg, const char *val)
{
    return parse_id(val, &cfg->jail_uid);
}

static const char *apply_jail_gid(VmConfig *cfg, const char *val)
{
    return parse_id(val, &cfg->jail_gid);
}

static const char *apply_chroot(VmConfig *cfg, const char *val)
{
    if (!*val)
        return "empty path";
    return set_str(&cfg->chroot_dir, val);
}

static const char *apply_log_level(VmConfig *cfg, const char *val)
{
    if (log_level_parse(val, &cfg->log_level) < 0)
        return "expected error, warn, info or debug";
    cfg->log_level_set = true;
    return NULL;
}

static const char *apply_log_file(VmConfig *cfg, const char *val)
{
    return *val ? set_str(&cfg->log_file, val) : "empty path";
}

static const char *apply_pidfile(VmConfig *cfg, const char *val)
{
    return *val ? set_str(&cfg->pidfile, val) : "empty path";
}

static bool *flag_daemonize(VmConfig *cfg)
{
    return &cfg->daemonize;
}

static bool *flag_rng(VmConfig *cfg)
{
    return &cfg->rng;
}
static bool *flag_balloon(VmConfig *cfg)
{
    return &cfg->balloon.on;
}
static bool *flag_test_device(VmConfig *cfg)
{
    return &cfg->test_device;
}
static bool *flag_verbose(VmConfig *cfg)
{
    return &cfg->verbose;
}

static const OptDef opts[] = {
    { "kernel", OPT_VALUE, apply_kernel, NULL, false },
    { "memory", OPT_VALUE, apply_memory, NULL, true },
    { "cpus", OPT_VALUE, apply_cpus, NULL, true },
    { "cmdline", OPT_VALUE, apply_cmdline, NULL, false },
    { "initrd", OPT_VALUE, apply_initrd, NULL, false },
    { "api-socket", OPT_VALUE, apply_api_socket, NULL, false },
    { "name", OPT_VALUE, apply_name, NULL, false },
    { "uuid", OPT_VALUE, apply_uuid, NULL, false },
    { "serial", OPT_VALUE, apply_serial, NULL, false },
    { "test-device", OPT_FLAG, NULL, flag_test_device, false },
    { "verbose", OPT_FLAG, NULL, flag_verbose, false },
    { "config", OPT_CONFIG, NULL, NULL, false },
    { "help", OPT_HELP, NULL, NULL, false },
    { "disk", OPT_VALUE, apply_disk, NULL, false },
    { "net", OPT_VALUE, apply_net, NULL, false },
    { "rng", OPT_FLAG, NULL, flag_rng, false },
    { "balloon", OPT_OPTVALUE, apply_balloon, flag_balloon, false },
    { "vsock", OPT_VALUE, apply_vsock, NULL, false },
    { "seccomp", OPT_VALUE, apply_seccomp, NULL, false },
    { "dirty-ring", OPT_VALUE, apply_dirty_ring, NULL, true },
    { "jail-uid", OPT_VALUE, apply_jail_uid, NULL, true },
    { "jail-gid", OPT_VALUE, apply_jail_gid, NULL, true },
    { "chroot", OPT_VALUE, apply_chroot, NULL, false },
    { "incoming", OPT_VALUE, apply_incoming, NULL, false },
    { "restore", OPT_VALUE, apply_restore, NULL, false },
    { "log-level", OPT_VALUE, apply_log_level, NULL, false },
    { "log-file", OPT_VALUE, apply_log_file, NULL, false },
    { "daemonize", OPT_FLAG, NULL, flag_daemonize, false },
    { "pidfile", OPT_VALUE, apply_pidfile, NULL, false },
    { "metrics", OPT_VALUE, apply_metrics, NULL, false },
};

static const OptDef *find_opt(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
        if (strlen(opts[i].name) == len && !strncmp(opts[i].name, name, len))
            return &opts[i];
    return NULL;
}

void vm_config_init(VmConfig *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->memory = VM_DEFAULT_MEMORY;
    cfg->cpus = 1;
    cfg->serial = SERIAL_STDIO;
    cfg->jail_uid = cfg->jail_gid = -1;
    cfg->log_level = LOG_DEFAULT_LEVEL;
    cfg->dirty_ring = VM_DIRTY_RING_AUTO;
    memcpy(cfg->uuid, VM_NIL_UUID, sizeof(VM_NIL_UUID));
}

void vm_config_free(VmConfig *cfg)
{
    free(cfg->kernel);
    free(cfg->initrd);
    free(cfg->cmdline);
    free(cfg->api_socket);
    free(cfg->name);
    free(cfg->incoming);
    free(cfg->serial_path);
    free(cfg->chroot_dir);
    free(cfg->log_file);
    free(cfg->pidfile);
    free(cfg->metrics_path);
    free(cfg->vsock.uds);
    for (unsigned i = 0; i < cfg->ndisks; i++)
        free(cfg->disks[i].path);
    for (unsigned i = 0; i < cfg->nnets; i++)
        free(cfg->nets[i].tap);
    vm_config_init(cfg);
}

/* Splits argv[*i] into an option and its value (consuming argv[*i+1] if
 * needed).  Returns the option or NULL with err set. */
static const OptDef *next_opt(int argc, char *const argv[], int *i, const char **val, char *err,
                              size_t errlen)
{
    const char *a = argv[*i];
    *val = NULL;
    if (!strcmp(a, "-h"))
        return find_opt("help", 4);
    if (strncmp(a, "--", 2) || !a[2]) {
        snprintf(err, errlen, "unexpected argument '%s' (see strata run --help)",
                 quote(a, strlen(a)).s);
        return NULL;
    }
    const char *name = a + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    const OptDef *o = find_opt(name, len);
    if (!o) {
        snprintf(err, errlen, "unknown option '%s' (see strata run --help)", quote(a, len + 2).s);
        return NULL;
    }
    if (o->kind == OPT_OPTVALUE) {
        if (eq)
            *val = eq + 1;
        else if (*i + 1 < argc && argv[*i + 1][0] != '-')
            *val = argv[++*i];
        return o;
    }
    bool takes_value = o->kind == OPT_VALUE || o->kind == OPT_CONFIG || o->kind == OPT_TODO;
    if (!takes_value) {
        if (eq) {
            snprintf(err, errlen, "--%s takes no value ('%s')", o->name, quote(a, strlen(a)).s);
            return NULL;
        }
        return o;
    }
    if (eq) {
        *val = eq + 1;
    } else if (*i + 1 < argc) {
        *val = argv[++*i];
    } else if (o->kind != OPT_TODO) {
        snprintf(err, errlen, "--%s: missing value", o->name);
        return NULL;
    }
    return o;
}

int vm_config_parse_args(VmConfig *cfg, int argc, char *const argv[], char *err, size_t errlen)
{
    const char *val;
    /* Pass 1: --help anywhere wins; syntax errors; the config file. */
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return CONFIG_HELP;
    const char *config = NULL;
    for (int i = 0; i < argc; i++) {
        const OptDef *o = next_opt(argc, argv, &i, &val, err, errlen);
        if (!o)
            return CONFIG_ERROR;
        if (o->kind == OPT_CONFIG) {
            if (config) {
                snprintf(err, errlen, "--config %s: only one config file may be given",
                         quote(val, strlen(val)).s);
                return CONFIG_ERROR;
            }
            config = val;
        }
    }
    if (config && vm_config_load_file(cfg, config, err, errlen) < 0)
        return CONFIG_ERROR;
    /* Pass 2: the command line overrides the file. */
    for (int i = 0; i < argc; i++) {
        const OptDef *o = next_opt(argc, argv, &i, &val, err, errlen);
        if (!o)
            return CONFIG_ERROR;
        switch (o->kind) {
        case OPT_VALUE: {
            const char *why = o->apply(cfg, val);
            if (why) {
                /* next_opt sets val for every OPT_VALUE option */
                /* NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker) */
                snprintf(err, errlen, "--%s %s: %s", o->name, quote(val, strlen(val)).s, why);
                return CONFIG_ERROR;
            }
            break;
        }
        case OPT_FLAG:
            *o->flag(cfg) = true;
            break;
        case OPT_OPTVALUE: {
            const char *v = val ? val : "";
            const char *why = o->apply(cfg, v);
            if (why) {
                snprintf(err, errlen, "--%s %s: %s", o->name, quote(v, strlen(v)).s, why);
                return CONFIG_ERROR;
            }
            break;
        }
        case OPT_TODO:
            snprintf(err, errlen, "--%s: not implemented yet", o->name);
            return CONFIG_ERROR;
        default:
            break;
        }
    }
    return vm_config_check(cfg, err, errlen) < 0 ? CONFIG_ERROR : CONFIG_OK;
}

int vm_config_apply_json(VmConfig *cfg, const char *text, const char *origin, char *err,
                         size_t errlen)
{
    json_error_t je;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        snprintf(err, errlen, "%s: invalid JSON at line %d column %d: %s", origin, je.line,
                 je.column, quote(je.text, strlen(je.text)).s);
        return -1;
    }
    int ret = -1;
    if (!json_is_object(root)) {
        snprintf(err, errlen, "%s: expected a JSON object", origin);
        goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        const OptDef *o = find_opt(key, strlen(key));
        Quoted k = quote(key, strlen(key)); /* for messages */
        if (!o || o->kind == OPT_HELP) {
            snprintf(err, errlen, "%s: unknown key \"%s\"", origin, k.s);
            goto out;
        }
        if (o->kind == OPT_CONFIG) {
            snprintf(err, errlen, "%s: key \"config\": a config file cannot include another",
                     origin);
            goto out;
        }
        if (o->kind == OPT_TODO) {
            snprintf(err, errlen, "%s: key \"%s\": not implemented yet", origin, k.s);
            goto out;
        }
        if (o->kind == OPT_OPTVALUE && json_is_boolean(v)) {
            const char *why = json_is_true(v) ? o->apply(cfg, "") : NULL;
            if (why) {
                snprintf(err, errlen, "%s: key \"%s\": %s", origin, k.s, why);
                goto out;
            }
            *o->flag(cfg) = json_is_true(v);
            continue;
        }
        if (o->kind == OPT_FLAG) {
            if (!json_is_boolean(v)) {
                snprintf(err, errlen, "%s: key \"%s\": expected true or false", origin, k.s);
                goto out;
            }
            *o->flag(cfg) = json_is_true(v);
            continue;
        }
        if (json_is_array(v) && (o->apply == apply_disk || o->apply == apply_net)) {
            /* repeatable options take an array of their strings */
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e)
            {
                const char *es = json_is_string(e) ? json_string_value(e) : NULL;
                if (!es || strlen(es) != json_string_length(e)) {
                    snprintf(err, errlen, "%s: key \"%s\"[%zu]: expected a string", origin, k.s, i);
                    goto out;
                }
                const char *why = o->apply(cfg, es);
                if (why) {
                    snprintf(err, errlen, "%s: key \"%s\"[%zu] (%s): %s", origin, k.s, i,
                             quote(es, strlen(es)).s, why);
                    goto out;
                }
            }
            continue;
        }
        char num[32];
        const char *s;
        if (json_is_string(v)) {
            s = json_string_value(v);
            if (strlen(s) != json_string_length(v)) {
                snprintf(err, errlen, "%s: key \"%s\": string contains a NUL byte", origin, k.s);
                goto out;
            }
        } else if (o->numeric && json_is_integer(v) && json_integer_value(v) >= 0) {
            snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
            s = num;
        } else {
            snprintf(err, errlen, "%s: key \"%s\": expected a %s", origin, k.s,
                     o->numeric ? "string or a non-negative integer" : "string");
            goto out;
        }
        const char *why = o->apply(cfg, s);
        if (why) {
            snprintf(err, errlen, "%s: key \"%s\" (%s): %s", origin, k.s, quote(s, strlen(s)).s,
                     why);
            goto out;
        }
    }
    ret = 0;
out:
    json_decref(root);
    return ret;
}

int vm_config_load_file(VmConfig *cfg, const char *path, char *err, size_t errlen)
{
    /* O_NONBLOCK: opening a FIFO would wait for a writer */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "--config %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "--config %s: not a regular file", path);
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        snprintf(err, errlen, "--config %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int ret = -1;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            if (cap >= (1u << 20)) {
                snprintf(err, errlen, "--config %s: file larger than 1 MiB", path);
                goto out;
            }
            cap = cap ? cap * 2 : 8192;
            char *nb = realloc(buf, cap);
            if (!nb) {
                snprintf(err, errlen, "--config %s: out of memory", path);
                goto out;
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, 4096, f);
        len += n;
        if (n < 4096)
            break;
    }
    if (ferror(f)) {
        snprintf(err, errlen, "--config %s: read error", path);
        goto out;
    }
    buf[len] = 0;
    if (strlen(buf) != len) {
        snprintf(err, errlen, "--config %s: file contains a NUL byte", path);
        goto out;
    }
    char origin[300];
    snprintf(origin, sizeof(origin), "--config %s", path);
    ret = vm_config_apply_json(cfg, buf, origin, err, errlen);
out:
    free(buf);
    fclose(f);
    return ret;
}

int vm_config_check(const VmConfig *cfg, char *err, size_t errlen)
{
    if (!cfg->kernel) {
        snprintf(err, errlen, "--kernel: missing (a PVH ELF to boot is required)");
        return -1;
    }
    if ((cfg->jail_uid < 0) != (cfg->jail_gid < 0)) {
        snprintf(err, errlen, "%s: needs %s too (the jail drops both)",
                 cfg->jail_uid < 0 ? "--jail-gid" : "--jail-uid",
                 cfg->jail_uid < 0 ? "--jail-uid" : "--jail-gid");
        return -1;
    }
    if (cfg->incoming && !strcmp(cfg->incoming, "defer") && !cfg->api_socket) {
        snprintf(err, errlen,
                 "--incoming defer: needs --api-socket (the URI comes through QMP "
                 "migrate-incoming)");
        return -1;
    }
    if (cfg->daemonize && cfg->serial == SERIAL_STDIO) {
        snprintf(err, errlen,
                 "--daemonize: the serial port is on stdio (the default), which a "
                 "daemon closes; choose --serial pty, socket=PATH, file=PATH or none");
        return -1;
    }
    return 0;
}

const char *vm_config_usage(void)
{
    return "Usage: strata run --kernel FILE [options]\n"
           "       strata ctl --api-socket PATH COMMAND [ARGS]   (strata ctl --help)\n"
           "\n"
           "Runs a KVM virtual machine.  Options (also --opt=value; a JSON --config file\n"
           "takes the same names as keys, and the command line overrides it):\n"
           "  --kernel FILE        a Linux bzImage (64-bit boot protocol, loaded at 1M)\n"
           "                       or an ELF with a PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY):\n"
           "                       its PT_LOAD segments are loaded at their physical\n"
           "                       addresses and the vCPU starts in the PVH entry state\n"
           "  --initrd FILE        initial ramdisk (bzImage: ramdisk_image; PVH: module 0)\n"
           "                       (--kernel and --initrd: regular files, read once at\n"
           "                       start; a reset boots that copy whatever the files\n"
           "                       become)\n"
           "  --memory SIZE        guest RAM (default 256M): a decimal number with an\n"
           "                       optional K/M/G/T suffix (binary units), a bare\n"
           "                       number is MiB; 2M..1T, a multiple of 4K\n"
           "  --cpus N             number of vCPUs (1..64; ACPI MADT, APs started by INIT/SIPI)\n"
           "  --cmdline TEXT       kernel command line (e.g. console=ttyS0); strata\n"
           "                       appends reboot=k unless TEXT has a reboot= option:\n"
           "                       4095 bytes in all\n"
           "  --api-socket PATH    QMP control socket (unix); see strata ctl.  Up to 128\n"
           "                       clients; one that sends and reads nothing for 300 s\n"
           "                       is closed (environment STRATA_QMP_IDLE_TIMEOUT_MS=N:\n"
           "                       N ms, 0 = never); when all are taken, the one idle\n"
           "                       the longest (1 s or more) makes room for a new one\n"
           "  --name NAME          the VM's name, as QMP query-name reports it (1..255\n"
           "                       bytes of UTF-8; none by default)\n"
           "  --uuid UUID          the VM's UUID, as QMP query-uuid reports it (8-4-4-4-12\n"
           "                       hex digits; default all zeros)\n"
           "  --serial MODE        16550A UART at 0x3f8: stdio (default), file=PATH, pty,\n"
           "                       socket=PATH, none (stdio: the terminal in raw mode\n"
           "                       feeds the guest; Ctrl-A x quits.  pty: a new pseudo\n"
           "                       terminal, its path printed as \"char device redirected\n"
           "                       to /dev/pts/N (label serial0)\".  socket=PATH: a unix\n"
           "                       socket server; one client at a time reads the output\n"
           "                       and types input, and may leave and come back; output\n"
           "                       nobody read (the last 64 KiB) is replayed on attach)\n"
           "  --disk path=FILE[,readonly=on][,num-queues=N][,bw=BYTES_PER_S][,iops=N]\n"
           "         [,bw_burst=BYTES][,iops_burst=N][,event_idx=off][,indirect_desc=off]\n"
           "                       virtio-blk disk (repeatable, up to 8) backed by FILE\n"
           "                       (a regular file or a block device; a comma in FILE\n"
           "                       is written ,, as in QEMU).  The image is locked while\n"
           "                       strata runs, as QEMU locks it: exclusive, shared if\n"
           "                       readonly=on; a second VM on it is refused.  bw and\n"
           "                       iops limit the data bytes and requests per second\n"
           "                       (token buckets; sizes take K/M/G suffixes, a bare\n"
           "                       number is bytes; 0 = unlimited); the bursts default\n"
           "                       to one second's worth.  Requests over the limit wait\n"
           "                       in the queue.  QMP block_set_io_throttle changes them.\n"
           "                       num-queues: request queues, 1 (default) to 16\n"
           "                       (VIRTIO_BLK_F_MQ; the guest may give each vCPU its\n"
           "                       own); the limits and counters are the disk's, all\n"
           "                       queues together; a migration or snapshot needs the\n"
           "                       same count on both sides.  event_idx=off,\n"
           "                       indirect_desc=off: the disk does not offer\n"
           "                       VIRTIO_F_EVENT_IDX / VIRTIO_F_INDIRECT_DESC (QEMU's\n"
           "                       names; both are offered by default)\n"
           "  --net tap=NAME[,mac=52:54:00:12:34:56][,bw=BYTES_PER_S][,pps=N]\n"
           "        [,bw_burst=BYTES][,pps_burst=N]\n"
           "                       virtio-net device on TAP interface NAME (repeatable).\n"
           "                       bw and pps limit frame bytes and packets per second,\n"
           "                       each direction on its own (as --disk; a limited\n"
           "                       receive leaves frames in the TAP); QMP\n"
           "                       x-net-set-rate-limit changes them\n"
           "  --rng                a virtio-rng device (entropy from getrandom)\n"
           "  --balloon [deflate-on-oom=on,free-page-reporting=on,stats-interval=N]\n"
           "                       a virtio-balloon device: QMP balloon {\"value\": BYTES}\n"
           "                       asks the guest to shrink to BYTES of RAM, query-balloon\n"
           "                       says how far it got.  The pages the guest gives up\n"
           "                       (and, with free-page-reporting=on, the free pages it\n"
           "                       reports) go back to the host at once (madvise\n"
           "                       MADV_DONTNEED) and return zeroed when it touches them.\n"
           "                       deflate-on-oom=on lets the guest take pages back when\n"
           "                       it runs out of memory; stats-interval=N (seconds) adds\n"
           "                       the stats queue, refreshed every N s (query-balloon\n"
           "                       shows them).  Only a guest with a balloon driver acts\n"
           "                       on any of it\n"
           "  --vsock cid=N,uds=PATH\n"
           "                       a virtio-vsock device (guest CID N, 3 or more), served\n"
           "                       over Unix sockets: a guest connect to host port P\n"
           "                       connects to the socket PATH_P (RST if none listens);\n"
           "                       strata listens on PATH, where a host process sends\n"
           "                       \"CONNECT <port>\\n\" to reach guest port <port> and reads\n"
           "                       \"OK <hostport>\\n\" once the guest accepted.  Connections\n"
           "                       do not survive a migration or restore (the guest gets\n"
           "                       a transport reset)\n"
           "  --test-device        map the tiny-guest test device (PIO 0xf0-0xfb); the\n"
           "                       guest's EXIT port ends strata with the guest's code\n"
           "  --config FILE        JSON object with the keys above, e.g.\n"
           "                       {\"kernel\":\"g.elf\",\"memory\":\"512M\",\"test-device\":true}\n"
           "  --incoming URI       tcp:HOST:PORT or unix:PATH: wait there for a live\n"
           "                       migration (QMP migrate on the source) and run the\n"
           "                       guest it brings; the other options must describe\n"
           "                       the same machine (memory, cpus, devices), else the\n"
           "                       stream is refused saying what differs; the\n"
           "                       --api-socket answers while it waits (query-status:\n"
           "                       inmigrate; query-migrate; MIGRATION events).\n"
           "                       defer: listen nowhere until QMP migrate-incoming\n"
           "                       {\"uri\": URI} (strata ctl migrate-incoming URI)\n"
           "                       names the URI; needs --api-socket.\n"
           "                       file:PATH: restore the snapshot PATH (QMP migrate\n"
           "                       file:PATH, strata ctl snapshot) instead; its\n"
           "                       --api-socket greets a client once the guest is there\n"
           "  --restore PATH[,prefault=on]\n"
           "                       --incoming file:PATH: guest RAM is PATH mapped\n"
           "                       copy-on-write (read when touched; prefault=on reads\n"
           "                       it all in first); same machine options as the saved VM\n"
           "  --dirty-ring auto|off|ENTRIES\n"
           "                       the dirty log live migration and snapshots read:\n"
           "                       auto (default): KVM's per-vCPU dirty ring where\n"
           "                       /dev/kvm offers it (4096 entries), else the slot\n"
           "                       bitmaps (KVM_GET_DIRTY_LOG); off: the bitmaps;\n"
           "                       ENTRIES: a ring of that many (a power of two,\n"
           "                       256..65536), an error where the host has none\n"
           "  --seccomp MODE       per-thread syscall filters (vCPU, device I/O, main,\n"
           "                       stdin, waiter, migration threads): kill (default: a\n"
           "                       syscall outside its thread's list ends strata with a\n"
           "                       message naming the thread and the syscall, status\n"
           "                       159, after restoring the terminal and removing the\n"
           "                       --api-socket), log (allowed, logged by the kernel:\n"
           "                       dmesg, audit type=1326), off\n"
           "  --jail-uid UID --jail-gid GID\n"
           "                       after opening /dev/kvm, the kernel, disks, TAPs and\n"
           "                       sockets, drop to UID/GID (supplementary groups: GID\n"
           "                       only) with no_new_privs and an empty capability\n"
           "                       bounding set; both or neither\n"
           "  --chroot DIR         chroot to DIR at the same point (paths used later,\n"
           "                       e.g. the api socket's removal, are then inside DIR)\n"
           "  --metrics PATH[,interval=SECONDS]\n"
           "                       every SECONDS (1..86400, default 60) append one line\n"
           "                       to PATH (created if absent; a FIFO needs a reader):\n"
           "                       a JSON object with a timestamp and the counters of\n"
           "                       QMP x-query-stats (vCPU exits by reason, disk and\n"
           "                       NIC I/O, virtio notifications, migration's dirty\n"
           "                       pages); a failed write is reported once and the VM\n"
           "                       goes on\n"
           "  --verbose            dump the vCPU registers when the guest crashes\n"
           "  --log-level LEVEL    error, warn (default), info or debug; info adds the\n"
           "                       start-up (version, the machine built), migrations and\n"
           "                       their figures, device faults\n"
           "  --log-file PATH      log there (appended), one line per message:\n"
           "                       ISO-8601 UTC time with ms, level, message; errors also\n"
           "                       go to stderr.  Default: stderr, \"strata: MESSAGE\"\n"
           "  --daemonize          run in the background once the VM is built: the\n"
           "                       command returns 0 when the VM runs, or the start-up\n"
           "                       error and a non-zero status; stdin, stdout and stderr\n"
           "                       become /dev/null (not with --serial stdio)\n"
           "  --pidfile PATH       write strata's pid to PATH (locked, removed at exit);\n"
           "                       refused while another live strata holds it\n"
           "  --help               this text\n"
           "\n"
           "The in-kernel irqchip is on, so HLT does not end the VM; a guest ends\n"
           "through the test device, reboot (i8042 reset), ACPI poweroff or a crash.\n"
           "QMP system_powerdown (strata ctl powerdown) presses the ACPI power button\n"
           "(a GED interrupt); a guest that acts on it powers off.\n"
           "\n"
           "Exit status: 0 guest exit code 0, guest reboot or poweroff, or QMP quit;\n"
           "1 bad options or set-up failure; 2 guest exited with a non-zero code;\n"
           "3 guest crashed (triple fault, kernel panic via pvpanic) or asked for a\n"
           "reset; 4 KVM error; 5 --incoming/--restore: the migration stream or the\n"
           "snapshot failed or was refused (the guest never ran);\n"
           "128+N terminated by signal N; 159 (128+SIGSYS) a thread made a syscall\n"
           "outside its seccomp allowlist (--seccomp=kill; the message names both).\n";
}
