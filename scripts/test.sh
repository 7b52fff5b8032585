#!/usr/bin/env bash
# THE test command of strata (README's second command).
#  1. installs build dependencies from Debian (scripts/install-deps.sh);
#  2. builds build/ with gcc (-Werror) and runs every ctest tier there
#     (unit, kvm, e2e, ...; tiers that cannot run here skip loudly), then
#     the lint tier (clang-format, clang-tidy, iasl) as a step of its own;
#  3. builds build-asan/ with clang, ASan+UBSan and libFuzzer targets
#     (-Werror) and runs the unit and fuzz tiers there.
# Exits non-zero if any step fails.  Runs from any directory.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1
JOBS=${STRATA_JOBS:-2}

section() {
  printf '\n==================================================================\n'
  printf '== %s\n' "$*"
  printf '==================================================================\n'
}

failed=()
step() {   # step NAME CMD...: run CMD, remember NAME if it fails
  local name=$1; shift
  if ! "$@"; then
    echo "!! FAILED: $name"
    failed+=("$name")
    return 1
  fi
}

section "Dependencies (scripts/install-deps.sh)"
step "install-deps" bash scripts/install-deps.sh || exit 1

section "gcc build: build/ (STRATA_WERROR=ON)"
# A failed build still runs the tests that did build (-k 0 keeps going);
# the build step is reported as failed either way.
if step "configure build/" cmake -G Ninja -S . -B build -DCMAKE_C_COMPILER=gcc \
      -DSTRATA_WERROR=ON -DSTRATA_LINT_JOBS="$JOBS"; then
  step "build build/" cmake --build build -j "$JOBS" -- -k 0
  section "ctest build/ (all tiers but lint: unit, kvm, e2e, ...)"
  step "ctest build/" ctest --test-dir build -LE lint --output-on-failure
  section "ctest build/ -L lint (clang-format, clang-tidy, iasl)"
  step "lint" ctest --test-dir build -L lint --output-on-failure
fi

section "clang build: build-asan/ (ASan+UBSan, libFuzzer, STRATA_WERROR=ON)"
if step "configure build-asan/" cmake -G Ninja -S . -B build-asan \
      -DCMAKE_C_COMPILER=clang -DSTRATA_SANITIZE=ON -DSTRATA_FUZZ=ON \
      -DSTRATA_WERROR=ON; then
  step "build build-asan/" cmake --build build-asan -j "$JOBS" -- -k 0
  section "ctest build-asan/ -L 'unit|fuzz'"
  step "ctest build-asan/" ctest --test-dir build-asan -L 'unit|fuzz' --output-on-failure
fi

section "Summary"
if [ ${#failed[@]} -ne 0 ]; then
  printf 'FAILED steps:\n'
  printf '  - %s\n' "${failed[@]}"
  exit 1
fi
echo "All steps passed."
