/* SPDX-License-Identifier: MIT */
/* The VM's run state and the actions that change it (see runstate.h). */
#include "vmm/runstate.h"

#include <stdio.h>

#include "vmm/migration/migration.h"
#include "vmm/vmm.h"

const char *vmm_state_name(const Vmm *v)
{
    if (v->state == RUN_STATE_RUNNING && mig_in_final_phase(v->mig))
        return "finish-migrate";
    switch (v->state) {
    case RUN_STATE_RUNNING:
        return "running";
    case RUN_STATE_PAUSED:
        return "paused";
    case RUN_STATE_POSTMIGRATE:
        return "postmigrate";
    case RUN_STATE_INMIGRATE:
        return "inmigrate";
    default:
        return "shutdown";
    }
}

int vmm_check_guest(Vmm *v, QmpError *err)
{
    if (v->state == RUN_STATE_SHUTDOWN) {
        qmp_error_set(err, "The VM has shut down");
        return -1;
    }
    if (v->state == RUN_STATE_POSTMIGRATE) {
        qmp_error_set(err, "The VM was migrated away; it runs at the destination now");
        return -1;
    }
    if (v->state == RUN_STATE_INMIGRATE) {
        qmp_error_set(err, "The VM is waiting for an incoming migration (inmigrate): its guest "
                           "starts here once the migration completes, in the run state it "
                           "had at the source");
        return -1;
    }
    return 0;
}

static bool check_alive(Vmm *v, QmpError *err)
{
    return vmm_check_guest(v, err) == 0;
}

/* stop and cont hold the migration's run-state lock (mig_run_state_lock):
 * refused during a migration's final phase, never lost in it. */
int vmm_stop(Vmm *v, QmpError *err)
{
    if (!check_alive(v, err) || mig_run_state_lock(v->mig, err) < 0)
        return -1;
    bool change = v->state != RUN_STATE_PAUSED;
    if (change) {
        kvm_vm_pause(v->m.vm);
        v->state = RUN_STATE_PAUSED;
    }
    mig_run_state_unlock(v->mig);
    if (change)
        qmp_server_event(v->qmp, "STOP", NULL);
    return 0;
}

int vmm_cont(Vmm *v, QmpError *err)
{
    if (!check_alive(v, err) || mig_run_state_lock(v->mig, err) < 0)
        return -1;
    bool change = false;
    if (mig_release_hold(v->mig)) {
        change = true; /* the hold was all that paused it */
    } else if (v->state != RUN_STATE_RUNNING) {
        kvm_vm_resume(v->m.vm);
        change = true;
    }
    v->state = RUN_STATE_RUNNING;
    mig_run_state_unlock(v->mig);
    if (change)
        qmp_server_event(v->qmp, "RESUME", NULL);
    return 0;
}

int vmm_system_reset(Vmm *v, QmpError *err)
{
    char why[512];
    if (!check_alive(v, err))
        return -1;
    if (mig_active(v->mig)) {
        qmp_error_set(err, "system_reset: a migration is in progress (migrate_cancel first)");
        return -1;
    }
    if (mig_holds_guest(v->mig)) {
        qmp_error_set(err, "system_reset: the guest is held after an unconfirmed handover "
                           "(query-migrate); `cont` first");
        return -1;
    }
    bool running = v->state == RUN_STATE_RUNNING;
    if (running)
        kvm_vm_pause(v->m.vm);
    int r = machine_reset(&v->m, why, sizeof(why));
    if (running)
        kvm_vm_resume(v->m.vm);
    if (r < 0) {
        qmp_error_set(err, "system_reset failed: %s", why);
        return -1;
    }
    qmp_server_event(v->qmp, "RESET",
                     json_pack("{s:b,s:s}", "guest", 0, "reason", "host-qmp-system-reset"));
    return 0;
}

int vmm_system_powerdown(Vmm *v, QmpError *err)
{
    if (!check_alive(v, err))
        return -1;
    if (machine_powerdown(&v->m) < 0) {
        qmp_error_set(err, "system_powerdown: this machine has no ACPI power button");
        return -1;
    }
    qmp_server_event(v->qmp, "POWERDOWN", NULL);
    return 0;
}

void vmm_abandon_incoming(Vmm *v, int exit_status, const char *reason)
{
    mig_incoming_abort(v->mig); /* mig_free joins its thread */
    v->state = RUN_STATE_SHUTDOWN;
    v->exit_status = exit_status;
    v->done = true;
    qmp_server_event(v->qmp, "SHUTDOWN", json_pack("{s:b,s:s}", "guest", 0, "reason", reason));
}

void vmm_request_quit(Vmm *v)
{
    if (v->state == RUN_STATE_SHUTDOWN)
        return;
    v->quit = true;
    if (v->state == RUN_STATE_INMIGRATE) { /* no guest has run: nothing to end but the wait */
        fprintf(stderr, "strata: quit while waiting for an incoming migration; no guest ran\n");
        vmm_abandon_incoming(v, 0, "host-qmp-quit");
        return;
    }
    kvm_vm_request_end(v->m.vm, KVM_END_REQUESTED, 0, "quit");
}

pid_t vmm_vcpu_tid(Vmm *v, unsigned index)
{
    KvmVcpu *cpu = v->m.vm ? kvm_vm_vcpu(v->m.vm, index) : NULL;
    return cpu ? (pid_t)kvm_vcpu_thread_id(cpu) : 0;
}
