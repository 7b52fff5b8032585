#!/usr/bin/env bash
# Installs, from Debian's own packages, everything strata needs to build and
# test.  Idempotent: apt-get runs only when a package is missing.  Run as
# root on Debian 12 (bookworm); needs only Debian's mirror.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config
  # clang 14 + its runtime libraries: -fsanitize=fuzzer,address,undefined
  # needs libclang_rt.{fuzzer,asan,ubsan} from libclang-rt-14-dev.
  clang llvm libclang-rt-14-dev
  libcmocka-dev libjansson-dev libseccomp-dev liburing-dev linux-libc-dev libisal-dev
  # lint tier (ctest -L lint): scripts/format.sh, clang-tidy on the product
  # code, iasl disassembling the ACPI tables (acpica-tools).
  clang-format clang-tidy acpica-tools
  # e2e tier: guest images (scripts/build-guest.sh; the kernel and
  # busybox-static are downloaded, not installed) and the nested test bed
  # (scripts/testbed.sh); python3 runs the vmlinux extractor.
  qemu-system-x86 lz4 cpio e2fsprogs python3 binutils
)

missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  if [ "$status" != "installed" ]; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "install-deps: missing: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: must run as root to install: ${missing[*]}" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# Wait for another apt/dpkg run (up to 10 min) instead of failing on its lock.
APT=(apt-get -o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)
"${APT[@]}" update -q
"${APT[@]}" install -y -q --no-install-recommends "${missing[@]}"
echo "install-deps: installed ${missing[*]}"
