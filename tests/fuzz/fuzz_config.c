/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: `strata run`'s configuration (vmm/config.c).  The input
 * is NUL-separated: the first piece is a JSON config text, the others are
 * command-line arguments.  The JSON goes through vm_config_apply_json and,
 * written to a file, through --config in vm_config_parse_args with the
 * arguments (any --config argument of the input is dropped: the file is
 * the fuzzer's).  Every argument also goes through parse_size.
 *
 * A config that parses must hold what config.h promises (sizes, counts,
 * string lengths); everything is freed (ASan checks for leaks).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ARGS 64

static char json_path[64];

static void check(const VmConfig *c)
{
    if (c->memory < VM_MIN_MEMORY || c->memory > VM_MAX_MEMORY || c->cpus < 1 ||
        c->cpus > VM_MAX_CPUS || c->ndisks > VM_MAX_DISKS || c->nnets > VM_MAX_NETS ||
        (c->cmdline && strlen(c->cmdline) + vm_cmdline_appended(c->cmdline) > VM_MAX_CMDLINE) ||
        (c->serial == SERIAL_FILE && !c->serial_path))
        abort();
    for (unsigned i = 0; i < c->ndisks; i++)
        if (!c->disks[i].path || !c->disks[i].path[0])
            abort();
    for (unsigned i = 0; i < c->nnets; i++)
        if (!c->nets[i].tap || !c->nets[i].tap[0] || strlen(c->nets[i].tap) > 15)
            abort();
}

static void cleanup(void)
{
    unlink(json_path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!json_path[0]) {
        snprintf(json_path, sizeof(json_path), "/tmp/strata-fuzz-config-%d.json", (int)getpid());
        atexit(cleanup);
    }
    char *buf = malloc(size + 1);
    if (!buf)
        abort();
    memcpy(buf, data, size);
    buf[size] = 0;

    char *argv[MAX_ARGS + 2];
    int argc = 0;
    size_t json_len = strlen(buf);
    char err[512];
    for (size_t pos = json_len + 1; pos < size && argc < MAX_ARGS; pos += strlen(buf + pos) + 1) {
        char *a = buf + pos;
        uint64_t sz;
        if (parse_size(a, &sz) == 0 && sz == 0 && strspn(a, "0x") == 0)
            abort(); /* a size that parses to 0 must have said 0 */
        if (!strncmp(a, "--config", 8))
            continue;
        argv[argc++] = a;
    }

    VmConfig c;
    vm_config_init(&c);
    if (vm_config_apply_json(&c, buf, "fuzz.json", err, sizeof(err)) == 0 && c.kernel &&
        vm_config_check(&c, err, sizeof(err)) == 0)
        check(&c);
    vm_config_free(&c);

    FILE *f = fopen(json_path, "w");
    if (!f)
        abort();
    fwrite(buf, 1, json_len, f);
    fclose(f);
    if (json_len) {
        static char config_opt[] = "--config";
        argv[argc++] = config_opt;
        argv[argc++] = json_path;
    }
    vm_config_init(&c);
    if (vm_config_parse_args(&c, argc, argv, err, sizeof(err)) == CONFIG_OK)
        check(&c);
    vm_config_free(&c);
    free(buf);
    return 0;
}
