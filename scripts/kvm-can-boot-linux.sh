#!/usr/bin/env bash
# Decides, without asking anyone, whether this host's /dev/kvm can boot a
# stock Linux kernel directly.  Prints one line saying why, exits 0 (yes) or
# 1 (no: use the nested test bed, scripts/testbed.sh).
#   STRATA_KVM_BOOTS_LINUX=1|0  overrides the decision (e.g. to force the bed).
# A PVM host (kvm_pvm loaded, no VMX/SVM in the CPU flags) runs CPL0 guest
# code in KVM's instruction emulator, which a Linux kernel does not survive.
set -u
case "${STRATA_KVM_BOOTS_LINUX:-}" in
  1) echo "yes: STRATA_KVM_BOOTS_LINUX=1"; exit 0 ;;
  0) echo "no: STRATA_KVM_BOOTS_LINUX=0"; exit 1 ;;
esac
if [ ! -e /dev/kvm ]; then echo "no: /dev/kvm does not exist"; exit 1; fi
if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then echo "no: /dev/kvm is not readable and writable"; exit 1; fi
if [ -d /sys/module/kvm_pvm ]; then
  echo "no: /dev/kvm is PVM (kvm_pvm loaded): CPL0 guest code is emulated"; exit 1
fi
if ! grep -qwE 'vmx|svm' /proc/cpuinfo; then
  echo "no: the CPU offers neither VMX nor SVM, so /dev/kvm is not hardware-assisted"; exit 1
fi
for m in kvm_intel kvm_amd; do
  if [ -d /sys/module/$m ]; then echo "yes: $m with hardware virtualization"; exit 0; fi
done
echo "no: VMX/SVM present but neither kvm_intel nor kvm_amd is loaded"
exit 1
