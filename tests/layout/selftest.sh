#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# check-includes.sh on made-up trees: one that keeps every rule must pass,
# one that breaks each rule once (and has a loop between two rooms) must
# fail with each break named, so the check cannot pass by seeing nothing.
set -euo pipefail

check=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/check-includes.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "selftest: $*"; exit 1; }

# put FILE [INCLUDED...]: writes FILE including each INCLUDED ("x" or <x>).
put() {
    local f=$1
    shift
    mkdir -p "$(dirname "$f")"
    : >"$f"
    for i in "$@"; do
        case $i in
            \<*) echo "#include $i" >>"$f" ;;
            *) echo "#include \"$i\"" >>"$f" ;;
        esac
    done
}

# A tree that keeps the rules.
good=$tmp/good
mkdir -p "$good"
(
    cd "$good"
    put memory/memory.h '<stddef.h>'
    put memory/irq-line.h '<stdbool.h>'
    put kvm/kvm.h memory/memory.h memory/irq-line.h
    put kvm/kvm.c kvm/kvm.h
    put devices/serial.h memory/irq-line.h
    put devices/serial.c serial.h '<memory/memory.h>'
    put vmm/boot/loader.h
    put vmm/boot/loader.c vmm/boot/loader.h kvm/kvm.h
    put vmm/control/qmp.h
    put vmm/control/hmp.c vmm/control/qmp.h vmm/vmm.h vmm/runstate.h
    put vmm/runstate.h vmm/control/qmp.h
    put vmm/vmm.h vmm/machine.h vmm/control/qmp.h
    put vmm/machine.h vmm/boot/loader.h devices/serial.h
    put vmm/machine.c vmm/machine.h
    put vmm/migration/migration.h vmm/control/qmp.h
    put vmm/migration/migration.c vmm/migration/migration.h vmm/machine.h
    put vmm/sandbox.h
    put vmm/sandbox.c vmm/sandbox.h
    put vmm/run.c vmm/vmm.h vmm/migration/migration.h vmm/sandbox.h
    put tests/unit/t.c vmm/machine.h
)
out=$(bash "$check" "$good") || fail "a tree that keeps the rules failed: $out"

# A tree that breaks each rule once: 13 bad includes, and 3 loops between
# rooms (boot/acpi <-> control/qmp and devices/serial <-> kvm/kvm, made of
# bad includes, and runstate <-> control/hmp, made of allowed ones).
bad=$tmp/bad
mkdir -p "$bad"
(
    cd "$bad"
    put memory/memory.h kvm/kvm.h
    put kvm/kvm.h
    put kvm/kvm.c devices/serial.h
    put devices/serial.h kvm/kvm.h
    put devices/pvpanic.c tests/common/check.h
    put tests/common/check.h
    put vmm/boot/acpi.c vmm/control/qmp.h
    put vmm/boot/cpuid.c vmm/config.h
    put vmm/config.h
    put vmm/control/qmp.h
    put vmm/control/qmp.c vmm/boot/acpi.h
    put vmm/boot/acpi.h
    put vmm/machine.c vmm/control/qmp.h
    put vmm/devlist.c vmm/migration/stream.h
    put vmm/migration/stream.h
    put vmm/main.c missing.h
    put vmm/vmm.h
    put vmm/sandbox.h
    put vmm/migration/source.c vmm/vmm.h
    put vmm/migration/incoming.c vmm/sandbox.h
    put vmm/machine-virtio.c vmm/sandbox.h
    # control/hmp <-> runstate: allowed includes, but a loop between rooms
    put vmm/runstate.h
    put vmm/runstate.c vmm/control/hmp.h
    put vmm/control/hmp.h
    put vmm/control/hmp.c vmm/runstate.h
)
set +e
out=$(bash "$check" "$bad")
rc=$?
set -e
[[ $rc == 1 ]] || fail "a tree that breaks the rules: exit $rc, not 1: $out"
for want in \
    "memory/memory.h:1: includes kvm/kvm.h: memory/ includes libc only" \
    "kvm/kvm.c:1: includes devices/serial.h: kvm/ may include memory/ only" \
    "devices/serial.h:1: includes kvm/kvm.h: devices/ may include memory/ only" \
    "devices/pvpanic.c:1: includes tests/common/check.h: product code never includes tests/" \
    "vmm/boot/acpi.c:1: includes vmm/control/qmp.h: vmm/boot/ may include" \
    "vmm/boot/cpuid.c:1: includes vmm/config.h: vmm/boot/ may include" \
    "vmm/control/qmp.c:1: includes vmm/boot/acpi.h: vmm/control/ and vmm/boot/ never" \
    "vmm/machine.c:1: includes vmm/control/qmp.h: the board" \
    "vmm/devlist.c:1: includes vmm/migration/stream.h: the board" \
    "vmm/main.c:1: \"missing.h\" is not a file of this tree" \
    "vmm/migration/source.c:1: includes vmm/vmm.h: migration gets the program's run state" \
    "vmm/migration/incoming.c:1: includes vmm/sandbox.h: migration gets" \
    "vmm/machine-virtio.c:1: includes vmm/sandbox.h: the board gets" \
    "check-includes: 16 violation(s)"; do
    grep -qF -- "$want" <<<"$out" || fail "expected '$want' in:
$out"
done
loop=$(grep 'loop between rooms' <<<"$out") || fail "no loop found in:
$out"
for node in vmm/runstate vmm/control/hmp; do
    grep -qF " $node" <<<"$loop" || fail "the loop lacks $node: $loop"
done
echo "selftest: check-includes.sh passes a clean tree and names each of its 16 breaks (3 of them loops)"
