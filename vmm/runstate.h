/* SPDX-License-Identifier: MIT */
/*
 * The VM's run state and the actions that change it: stop, cont,
 * system_reset, system_powerdown, quit.  One implementation, called by the
 * QMP command table (control/commands.c) and by the human monitor
 * (control/hmp.c), which sits on top of QMP as QEMU's does: an HMP command
 * with a QMP twin runs the same action.  Each action sends its QMP event
 * itself.  Main thread.  Also what both monitors report of the running VM
 * (its vCPU threads).
 */
#ifndef STRATA_VMM_RUNSTATE_H
#define STRATA_VMM_RUNSTATE_H

#include <sys/types.h>

#include "vmm/control/qmp.h"

typedef struct Vmm Vmm;

/* 0 if the VM has a guest a command may act on; else -1 with err saying
 * why not (shut down, migrated away, still waiting for an incoming one). */
int vmm_check_guest(Vmm *v, QmpError *err);
/* Pauses the vCPUs (STOP event); no-op if paused.  0 or -1 with err. */
int vmm_stop(Vmm *v, QmpError *err);
/* Resumes them (RESUME event); no-op if running.  0 or -1 with err. */
int vmm_cont(Vmm *v, QmpError *err);
/* Resets the machine to its entry state (RESET event), keeping the
 * paused/running state.  0 or -1 with err. */
int vmm_system_reset(Vmm *v, QmpError *err);
/* Presses the guest's ACPI power button (POWERDOWN event); what happens
 * next is the guest's choice, as on a real machine.  0 or -1 with err. */
int vmm_system_powerdown(Vmm *v, QmpError *err);
/* Asks the VM to end; the main loop then reports SHUTDOWN and exits. */
void vmm_request_quit(Vmm *v);
/* A destination still waiting for its guest (inmigrate) ends without one:
 * the incoming side gives up, SHUTDOWN {"guest": false, "reason": reason}
 * goes out and the main loop leaves with exit_status. */
void vmm_abandon_incoming(Vmm *v, int exit_status, const char *reason);
/* QEMU's name of the run state: "running", "paused", "finish-migrate",
 * "postmigrate", "inmigrate" or "shutdown". */
const char *vmm_state_name(const Vmm *v);
/* The kernel thread id of vCPU index's thread (kvm_vcpu_thread_id), or 0
 * before it runs. */
pid_t vmm_vcpu_tid(Vmm *v, unsigned index);

#endif /* STRATA_VMM_RUNSTATE_H */
