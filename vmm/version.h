/* SPDX-License-Identifier: MIT */
/*
 * strata's version: one string, CMake's project(VERSION) (STRATA_VERSION,
 * defined for every file), which `strata --version` prints and QMP's
 * greeting and query-version report as numbers.
 */
#ifndef STRATA_VMM_VERSION_H
#define STRATA_VMM_VERSION_H

#ifndef STRATA_VERSION
#error "STRATA_VERSION comes from project(VERSION) in CMakeLists.txt"
#endif

/* "MAJOR.MINOR[.MICRO]" */
static inline const char *strata_version(void)
{
    return STRATA_VERSION;
}

/* The numbers of strata_version(): v[0] major, v[1] minor, v[2] micro;
 * a part the string lacks is 0. */
static inline void strata_version_numbers(int v[3])
{
    const char *p = STRATA_VERSION;
    for (int i = 0; i < 3; i++) {
        v[i] = 0;
        while (*p >= '0' && *p <= '9')
            v[i] = v[i] * 10 + (*p++ - '0');
        if (*p == '.')
            p++;
    }
}

#endif /* STRATA_VMM_VERSION_H */
