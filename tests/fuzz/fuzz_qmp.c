/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the QMP server (vmm/control/qmp.c: framing, JSON
 * parsing, request checking, dispatch) with strata's real command table
 * (vmm/control/commands.c, vmm/control/hmp.c, vmm/runstate.c) over a fake
 * VM (fake_vm.c) and a real memory-region tree with 64 KiB of RAM.
 *
 * Each input is one client connection on a unix socket served by the real
 * epoll handlers: byte 0 picks the VM's run state (bits 0-1) and whether
 * qmp_capabilities is sent first (bit 2); the rest is sent as is, then the
 * client shuts down its writing side.  Every reply must be a well-formed
 * line ("\r\n"-terminated JSON object with exactly one of QMP / return /
 * error / event; errors with a class and a desc), the first the greeting;
 * the number of replies and their size are bounded by the input; the
 * server must close the connection.  FUZZ_QMP_SHOW=1 prints the replies.
 */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "tests/fuzz/fake_vm.h"
#include "vmm/control/commands.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_REPLY_LINE (256u << 10)

static Vmm vmm;
static int epfd = -1;
static char sock_path[108];
static char *out;
static size_t out_len, out_cap;

static void die(const char *what)
{
    fprintf(stderr, "fuzz_qmp: %s\n", what);
    abort();
}

static void cleanup(void)
{
    qmp_server_free(vmm.qmp);
    vmm.qmp = NULL;
}

static void setup(void)
{
    Machine *m = &vmm.m;
    m->ctx = memory_context_new();
    if (!m->ctx || memory_region_init(&m->system, m->ctx, "system", UINT64_MAX) < 0 ||
        memory_region_init_ram(&m->ram, m->ctx, NULL, "microvm.ram", 0x10000) < 0 ||
        memory_region_add_subregion(&m->system, 0, &m->ram) < 0)
        die("memory setup");
    m->memory_as = address_space_new(m->ctx, &m->system, "memory");
    if (!m->memory_as)
        die("address space");
    m->vm = (KvmVm *)&fake_vm;
    m->ncpus = FAKE_VM_VCPUS;
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die("epoll_create1");
    const char *tmp = getenv("TMPDIR");
    snprintf(sock_path, sizeof(sock_path), "%s/strata-fuzz-qmp-%d.sock", tmp ? tmp : "/tmp",
             (int)getpid());
    char err[256];
    vmm.qmp = qmp_server_new(sock_path, epfd, vmm_qmp_commands, vmm_qmp_ncommands, &vmm, err,
                             sizeof(err));
    if (!vmm.qmp)
        die(err);
    atexit(cleanup);
}

/* Runs the server's handlers for whatever is ready; true if any ran. */
static int pump(void)
{
    struct epoll_event ev[16];
    int n = epoll_wait(epfd, ev, 16, 0);
    for (int i = 0; i < n; i++) {
        EvSource *src = ev[i].data.ptr;
        src->handler(src, ev[i].events);
    }
    qmp_server_reap(vmm.qmp);
    return n > 0;
}

/* Reads what the server sent; 1 at EOF. */
static int drain(int fd)
{
    for (;;) {
        if (out_cap - out_len < 65536) {
            out_cap = out_cap ? out_cap * 2 : 1 << 20;
            out = realloc(out, out_cap);
            if (!out)
                die("out of memory");
        }
        ssize_t r = recv(fd, out + out_len, out_cap - out_len, MSG_DONTWAIT);
        if (r > 0) {
            out_len += (size_t)r;
            continue;
        }
        if (r == 0)
            return 1;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return 0;
        if (errno == ECONNRESET)
            return 1;
        die("recv");
    }
}

static unsigned check_replies(size_t in_len)
{
    unsigned lines = 0;
    size_t pos = 0;
    while (pos < out_len) {
        char *nl = memchr(out + pos, '\n', out_len - pos);
        if (!nl)
            die("reply without a line end");
        size_t len = (size_t)(nl - (out + pos));
        if (len == 0 || out[pos + len - 1] != '\r')
            die("reply line not ended by \\r\\n");
        if (len > MAX_REPLY_LINE)
            die("reply line too long");
        json_error_t je;
        json_t *m = json_loadb(out + pos, len - 1, 0, &je);
        if (!json_is_object(m)) {
            fprintf(stderr, "fuzz_qmp: bad reply: %.*s\n", (int)len, out + pos);
            die("reply is not a JSON object");
        }
        int kinds = !!json_object_get(m, "QMP") + !!json_object_get(m, "return") +
                    !!json_object_get(m, "error") + !!json_object_get(m, "event");
        if (kinds != 1)
            die("reply has not exactly one of QMP/return/error/event");
        if (lines == 0 && !json_object_get(m, "QMP"))
            die("first line is not the greeting");
        json_t *e = json_object_get(m, "error");
        if (e && (!json_is_string(json_object_get(e, "class")) ||
                  !json_is_string(json_object_get(e, "desc"))))
            die("error without class and desc");
        json_decref(m);
        lines++;
        pos += len + 1;
    }
    /* a reply (and at most one event) per request; a request takes >= 1 byte */
    if (lines > 2 + 2 * (in_len + 1))
        die("more replies than requests");
    return lines;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (epfd < 0)
        setup();
    if (size < 1)
        return 0;
    static const char caps[] = "{\"execute\":\"qmp_capabilities\"}\n";
    vmm.state = (RunState)(data[0] & 3) % 3;
    vmm.quit = false;
    bool negotiate = data[0] & 4;
    data++, size--;
    size_t total = size + (negotiate ? sizeof(caps) - 1 : 0);
    uint8_t *in = malloc(total ? total : 1);
    if (!in)
        die("out of memory");
    if (negotiate)
        memcpy(in, caps, sizeof(caps) - 1);
    memcpy(in + (negotiate ? sizeof(caps) - 1 : 0), data, size);

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        die("connect");
    out_len = 0;
    size_t sent = 0;
    bool shut = false;
    unsigned idle = 0;
    for (;;) {
        int progress = pump();
        if (sent < total) {
            ssize_t w = send(fd, in + sent, total - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w > 0) {
                sent += (size_t)w;
                progress = 1;
            } else if (w < 0 && errno == EPIPE) {
                sent = total; /* the server dropped us: fine */
            }
        }
        if (sent == total && !shut) {
            shutdown(fd, SHUT_WR);
            shut = true;
        }
        size_t before = out_len;
        int eof = drain(fd);
        if (out_len != before)
            progress = 1;
        if (eof && shut)
            break;
        if (out_len > 1024ull * (total + 256))
            die("reply bytes out of proportion to the request bytes");
        idle = progress ? 0 : idle + 1;
        if (idle > 100000)
            die("the server stopped making progress");
    }
    close(fd);
    free(in);
    /* let the server notice the close, then no client may be left */
    for (int i = 0; i < 100 && qmp_server_nr_clients(vmm.qmp); i++)
        pump();
    if (qmp_server_nr_clients(vmm.qmp))
        die("client still connected after it closed");
    if (getenv("FUZZ_QMP_SHOW"))
        fwrite(out, 1, out_len, stderr);
    check_replies(total);
    fake_vm_reset_counters();
    return 0;
}
