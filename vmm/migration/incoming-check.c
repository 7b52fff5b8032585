/* SPDX-License-Identifier: MIT */
/* Whether QMP migrate-incoming may start the incoming side (see
 * migration.h): a pure decision, unit-tested (migration.incoming). */
#include <stdio.h>
#include <string.h>

#include "vmm/migration/migration.h"

const char *mig_incoming_refusal(MigIncomingMode mode, const char *uri, char *buf, size_t len)
{
    if (mode == MIG_INCOMING_NONE)
        return "migrate-incoming: this strata was not started as a migration destination "
               "(start it with --incoming defer to give the URI here)";
    if (mode == MIG_INCOMING_STARTED)
        return "migrate-incoming: the incoming side has started already (one incoming "
               "migration per destination; query-migrate says how it goes)";
    if (!uri)
        return "Parameter 'uri' is missing";
    if (!strcmp(uri, "defer"))
        return "Parameter 'uri': 'defer' is for the command line; give tcp:HOST:PORT, "
               "unix:PATH or file:PATH";
    const char *why = mig_check_uri(uri);
    if (!why)
        return NULL;
    snprintf(buf, len, "Parameter 'uri': '%.200s': %s", uri, why);
    return buf;
}
