/* SPDX-License-Identifier: MIT */
/* Which kind of place a migration URI names (docs/migration.md, docs/snapshot.md):
 * tcp:HOST:PORT and unix:PATH are streams, file:PATH is a snapshot file.
 * mig_check_uri (migration.h) says whether one is well formed. */
#ifndef STRATA_VMM_MIGRATION_URI_H
#define STRATA_VMM_MIGRATION_URI_H

#include <stdbool.h>
#include <string.h>

static inline bool mig_uri_is_file(const char *uri)
{
    return uri && !strncmp(uri, "file:", 5);
}

#endif
