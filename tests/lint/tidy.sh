#!/usr/bin/env bash
# lint.tidy: clang-tidy (checks in .clang-tidy: bugprone-*, clang-analyzer-*)
# over the product code, memory/ kvm/ devices/ vmm/, with the build's
# compile_commands.json; every finding is an error, in a product .c file or
# in a product header it includes.
# Usage: tidy.sh SOURCE_DIR BUILD_DIR [JOBS].  Exit 77 (skip) without
# clang-tidy or compile_commands.json.
set -uo pipefail

src=$(cd "$1" && pwd -P)
build=$(cd "$2" && pwd -P)
jobs=${3:-2}
folders=(memory kvm devices vmm)

tidy=${CLANG_TIDY:-}
if [ -z "$tidy" ]; then
  for t in clang-tidy-14 clang-tidy; do
    if command -v "$t" >/dev/null 2>&1; then
      tidy=$t
      break
    fi
  done
fi
if [ -z "$tidy" ]; then
  echo "SKIP: clang-tidy not found (Debian package clang-tidy; scripts/install-deps.sh installs it)"
  exit 77
fi
if ! command -v python3 >/dev/null 2>&1; then
  echo "SKIP: python3 not found (it picks the compile commands; scripts/install-deps.sh installs it)"
  exit 77
fi
if [ ! -f "$build/compile_commands.json" ]; then
  echo "SKIP: $build/compile_commands.json missing (configure with CMAKE_EXPORT_COMPILE_COMMANDS=ON)"
  exit 77
fi
"$tidy" --version | grep -m1 -i version

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# The product's .c files, each once, as the product's own target compiles
# it (a file that tests or benchmarks also build has several commands;
# clang-tidy would analyse it once per command, and its va_list checker
# then reports false "uninitialized va_list" findings).  A file no target
# builds cannot be checked: it is named and the test fails.
if ! python3 - "$src" "$build" "$out" "${folders[@]}" <<'PY'
import glob, json, os, sys
src, build, out, folders = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
db = json.load(open(os.path.join(build, "compile_commands.json")))
want = sorted(os.path.realpath(f) for d in folders
              for f in glob.glob(os.path.join(src, d, "**", "*.c"), recursive=True))
def output(e):
    if "output" in e:
        return e["output"]
    args = e.get("arguments") or e["command"].split()
    return args[args.index("-o") + 1] if "-o" in args else ""
chosen = {}
for e in db:
    f = os.path.realpath(os.path.join(e["directory"], e["file"]))
    if f not in want:
        continue
    product = not output(e).startswith(("tests/", "bench/"))
    if f not in chosen or (product and not chosen[f][0]):
        chosen[f] = (product, e)
missing = [f for f in want if f not in chosen]
for f in missing:
    print(f"FAIL: {f}: not in {build}/compile_commands.json")
json.dump([chosen[f][1] for f in want if f in chosen], open(os.path.join(out, "compile_commands.json"), "w"))
open(os.path.join(out, "files"), "w").write("".join(f + "\n" for f in want))
sys.exit(1 if missing else 0)
PY
then
  exit 1
fi
mapfile -t files <"$out/files"
echo "clang-tidy: ${#files[@]} files of ${folders[*]}, $jobs at a time"

header_filter="^$src/($(IFS='|'; echo "${folders[*]}"))/"
mkdir "$out/logs"
printf '%s\n' "${files[@]}" |
  xargs -P "$jobs" -I{} sh -c '
    log="$1/logs/$(echo "$2" | tr / _).log"
    if ! "$3" -p "$1" --quiet --warnings-as-errors="*" --header-filter="$4" \
         --extra-arg=-Wno-unknown-warning-option "$2" >"$log" 2>&1; then
      mv "$log" "$log.failed"
    fi' sh "$out" {} "$tidy" "$header_filter"

failed=("$out"/logs/*.failed)
if [ -e "${failed[0]}" ]; then
  cat "${failed[@]}" | grep -v '^[0-9]* warnings\? generated\.$' |
    grep -v '^Suppressed [0-9]* warnings' | grep -v '^Use -header-filter' |
    grep -v 'treated as errors\.$'
  echo "FAIL: clang-tidy found problems in ${#failed[@]} of ${#files[@]} files (above)"
  exit 1
fi
echo "ok: clang-tidy clean on ${#files[@]} files"
