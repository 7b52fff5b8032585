#!/usr/bin/env bash
# Formats strata's C with clang-format 14 and the repository's .clang-format.
#   scripts/format.sh           rewrites the files in place
#   scripts/format.sh --check   lists the files that differ, exits 1 if any
# What is formatted, explicitly: the .c and .h files of the product
# (memory/ kvm/ devices/ vmm/), of the tests (tests/) and of the benchmarks
# (bench/).  Not formatted: assembly (tests/guests/entry.S), linker scripts,
# and anything in EXCLUDE below.  The tree has no third-party or generated
# C; one that comes goes into EXCLUDE.
# Exits 77 if clang-format is missing (the ctest lint.format skips then).
# Another clang-format than 14 may lay code out differently: it is used
# with a warning; CLANG_FORMAT=path picks one.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1

FOLDERS=(memory kvm devices vmm tests bench)
EXCLUDE=()   # paths relative to the root, e.g. tests/foo/vendored.h

check=0
case "${1:-}" in
  "") ;;
  --check) check=1 ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

cf=${CLANG_FORMAT:-}
if [ -z "$cf" ]; then
  for c in clang-format-14 clang-format; do
    if command -v "$c" >/dev/null 2>&1; then
      cf=$c
      break
    fi
  done
fi
if [ -z "$cf" ]; then
  echo "SKIP: clang-format not found (Debian package clang-format; scripts/install-deps.sh installs it)"
  exit 77
fi
if ! "$cf" --version | grep -q 'version 14\.'; then
  echo "format.sh: warning: $("$cf" --version) is not clang-format 14; its layout may differ" >&2
fi

if [ ! -f .clang-format ]; then
  echo "format.sh: $ROOT/.clang-format missing" >&2
  exit 2
fi

files=()
while IFS= read -r -d '' f; do
  f=${f#./}
  for x in "${EXCLUDE[@]}"; do
    [ "$f" = "$x" ] && continue 2
  done
  files+=("$f")
done < <(find "${FOLDERS[@]}" -type f \( -name '*.c' -o -name '*.h' \) -print0 | sort -z)

if [ $check -eq 0 ]; then
  "$cf" -i --style=file "${files[@]}" || exit 1
  echo "format.sh: formatted ${#files[@]} files"
  exit 0
fi

differ=0
for f in "${files[@]}"; do
  if ! "$cf" --style=file "$f" | cmp -s - "$f"; then
    echo "$f"
    differ=$((differ + 1))
  fi
done
if [ $differ -ne 0 ]; then
  echo "format.sh: $differ of ${#files[@]} files differ from .clang-format (scripts/format.sh rewrites them)"
  exit 1
fi
echo "format.sh: ${#files[@]} files formatted"
