/* SPDX-License-Identifier: MIT */
/* strata: a lightweight KVM virtual machine monitor. */
#include <stdio.h>
#include <string.h>

#include "vmm/control/ctl.h"
#include "vmm/version.h"
#include "vmm/vmm.h"

static const char usage[] =
    "Usage: strata run [options]                          start a VM (strata run --help)\n"
    "       strata ctl --api-socket PATH COMMAND [ARGS]   talk to one (strata ctl --help)\n";

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return 1;
    }
    if (!strcmp(argv[1], "run"))
        return strata_run(argc - 2, argv + 2);
    if (!strcmp(argv[1], "ctl"))
        return strata_ctl(argc - 2, argv + 2);
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        fputs(usage, stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("strata %s\n", strata_version());
        return 0;
    }
    fprintf(stderr, "strata: unknown command '%s' (expected run or ctl)\n%s", argv[1], usage);
    return 1;
}
