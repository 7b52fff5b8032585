#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Checks the include graph of strata's product code (memory/, kvm/,
# devices/, vmm/) against the rules in docs/architecture.md ("Folders"):
#
#   memory/         libc only: nothing outside memory/
#   kvm/            memory/
#   devices/        memory/ (memory/irq-line.h is how they raise interrupts)
#   vmm/boot/       memory/, kvm/, devices/: not the rest of vmm/
#   vmm/control/    anything but vmm/boot/
#   vmm/ (root)     the program's files (main.c, run.c, runstate.[ch],
#                   vmm.h) anything; the rest of the root (the board:
#                   machine, machine-virtio, devlist, config, sandbox and
#                   their helpers) neither vmm/control/ nor migration, nor
#                   the program's files, nor (but the sandbox's own
#                   sandbox.c, sandbox-*.[ch]) sandbox.h:
#                   the board's threads get their sandbox through the
#                   BoardHooks the program hands it
#   migration       vmm/migration/: anything but the program's files and
#                   sandbox.h: the run state, the main loop and the sandbox
#                   reach it through the MigHost the program hands it
#   product code    never tests/
#
# and no loop of includes joins two rooms (memory, kvm, devices, vmm/boot,
# vmm/control, migration, the vmm/ root).  A file and its header count as
# one node: a.c including b.h while b.c includes a.h is a loop, the shape
# of two files that call each other.
#
# Usage: check-includes.sh [SOURCE_DIR]    (default: this checkout)
# Prints one line per violation and exits 1, or a summary and exits 0.
set -euo pipefail

src=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
cd "$src"

# room PATH: sets ROOM to PATH's room (no fork: called once per include).
room() {
    case $1 in
        memory/*) ROOM=memory ;;
        kvm/*) ROOM=kvm ;;
        devices/*) ROOM=devices ;;
        vmm/boot/*) ROOM=vmm/boot ;;
        vmm/control/*) ROOM=vmm/control ;;
        vmm/migration/*) ROOM=migration ;;
        vmm/*/*) ROOM=${1%/*} ;;    # a room not named here yet: its folder
        vmm/*) ROOM=vmm ;;
        tests/*) ROOM=tests ;;
        bench/*) ROOM=bench ;;
        *) ROOM=other ;;
    esac
}

# program FILE: true for the vmm/ root's program files.
program() {
    case $1 in
        vmm/main.c | vmm/run.c | vmm/runstate.c | vmm/runstate.h | vmm/vmm.h) return 0 ;;
    esac
    return 1
}
# forbidden FILE FROM_ROOM TO_ROOM TARGET: sets WHY when FILE (in FROM_ROOM)
# may not include TARGET, a header of TO_ROOM.
forbidden() {
    local file=$1 from=$2 to=$3 target=$4
    WHY=
    if [[ $to == vmm ]] && ! program "$file" && { program "$target" ||
        [[ $target == vmm/sandbox.h && $file != vmm/sandbox.c && $file != vmm/sandbox-* ]]; }; then
        case $from in
            vmm) WHY="the board gets the program's run state and sandbox through BoardHooks" ;;
            migration) WHY="migration gets the program's run state and sandbox through MigHost" ;;
        esac
        [[ -n $WHY ]] && return
    fi
    [[ $to == "$from" ]] && return
    if [[ $to == tests ]]; then
        WHY="product code never includes tests/"
        return
    fi
    case $from in
        memory) WHY="memory/ includes libc only" ;;
        kvm) [[ $to == memory ]] || WHY="kvm/ may include memory/ only" ;;
        devices) [[ $to == memory ]] || WHY="devices/ may include memory/ only" ;;
        vmm/boot)
            case $to in
                memory | kvm | devices) ;;
                *) WHY="vmm/boot/ may include memory/, kvm/ and devices/ only" ;;
            esac ;;
        vmm/control)
            [[ $to != vmm/boot ]] || WHY="vmm/control/ and vmm/boot/ never include each other" ;;
        vmm)
            case ${file#vmm/} in
                main.c | run.c | runstate.c | runstate.h | vmm.h) ;;
                *)
                    if [[ $to == vmm/control || $to == migration ]]; then
                        WHY="the board (the vmm/ root but the program's files) never includes $to"
                    fi ;;
            esac ;;
    esac
}

mapfile -t files < <(find memory kvm devices vmm -name '*.[ch]' | LC_ALL=C sort)
if ((${#files[@]} == 0)); then
    echo "check-includes: no sources under $src" >&2
    exit 2
fi

errors=0
nincludes=0
edges=()
# grep prints FILE:LINE:TEXT for each #include; TEXT keeps its quotes.
include_re='^[[:space:]]*#[[:space:]]*include[[:space:]]*([<"])([^>"]+)[>"]'
while IFS=: read -r file lineno text; do
    [[ $text =~ $include_re ]] || continue
    inc=${BASH_REMATCH[2]}
    target=
    if [[ ${BASH_REMATCH[1]} == '"' ]]; then
        if [[ -f $inc ]]; then
            target=$inc
        elif [[ -f $(dirname "$file")/$inc ]]; then
            target=$(realpath -m --relative-to=. "$(dirname "$file")/$inc")
        else
            echo "$file:$lineno: \"$inc\" is not a file of this tree"
            errors=$((errors + 1))
            continue
        fi
    elif [[ -f $inc && $inc == */* ]]; then
        target=$inc            # <memory/memory.h>: still one of ours
    else
        continue               # a system header
    fi
    nincludes=$((nincludes + 1))
    room "$file"; from=$ROOM
    room "$target"; to=$ROOM
    forbidden "$file" "$from" "$to" "$target"
    if [[ -n $WHY ]]; then
        echo "$file:$lineno: includes $target: $WHY"
        errors=$((errors + 1))
    fi
    edges+=("${file%.[ch]} ${target%.[ch]} $from $to")
done < <(grep -HnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]' "${files[@]}")

# Loops between rooms: strongly connected components (Tarjan) of the graph
# whose nodes are files without their .c/.h, kept when they span two rooms.
loops=$(printf '%s\n' "${edges[@]}" | awk '
    function visit(v,    i, w, members, rooms, nrooms) {
        idx[v] = low[v] = ++counter
        stack[++sp] = v
        on[v] = 1
        for (i = 1; i <= deg[v]; i++) {
            w = adj[v, i]
            if (!(w in idx)) {
                visit(w)
                if (low[w] < low[v])
                    low[v] = low[w]
            } else if (on[w] && idx[w] < low[v]) {
                low[v] = idx[w]
            }
        }
        if (low[v] != idx[v])
            return
        members = ""; rooms = " "; nrooms = 0
        do {
            w = stack[sp--]
            on[w] = 0
            members = members " " w
            if (index(rooms, " " room[w] " ") == 0) {
                rooms = rooms room[w] " "
                nrooms++
            }
        } while (w != v)
        if (nrooms > 1)
            print "loop between rooms" rooms ":" members
    }
    NF == 4 {
        room[$1] = $3; room[$2] = $4
        if ($1 != $2 && !(($1, $2) in seen)) {
            seen[$1, $2] = 1
            adj[$1, ++deg[$1]] = $2
        }
        node[$1] = 1; node[$2] = 1
    }
    END {
        for (v in node)
            if (!(v in idx))
                visit(v)
    }')
if [[ -n $loops ]]; then
    echo "$loops"
    errors=$((errors + $(wc -l <<<"$loops")))
fi

if ((errors)); then
    echo "check-includes: $errors violation(s) of the include rules (docs/architecture.md, Folders)"
    exit 1
fi
echo "check-includes: ${#files[@]} files, $nincludes includes of this tree: no rule broken, no loop between rooms"
