/* SPDX-License-Identifier: MIT */
/* `strata ctl`: a small QMP client for a running strata's control socket. */
#ifndef STRATA_VMM_CONTROL_CTL_H
#define STRATA_VMM_CONTROL_CTL_H

/* `strata ctl` (args after "ctl"); returns the exit status. */
int strata_ctl(int argc, char *const argv[]);

#endif /* STRATA_VMM_CONTROL_CTL_H */
