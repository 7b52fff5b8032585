#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# `cmake --install BUILD` into a temporary DESTDIR: bin/strata,
# share/man/man1/strata.1 and share/bash-completion/completions/strata
# exist; the man page (roff escapes undone) holds every --option of
# `strata run --help` and every command of `strata ctl --help`; the
# completion offers every option and is valid bash.
#   check-install.sh BUILD_DIR
set -euo pipefail

build=$1
dest=$(mktemp -d /tmp/strata-install-XXXXXX)
trap 'rm -rf "$dest"' EXIT
fail() { echo "install.files: FAIL: $*" >&2; exit 1; }

DESTDIR=$dest cmake --install "$build" --prefix /usr > "$dest.log" 2>&1 ||
	{ cat "$dest.log" >&2; rm -f "$dest.log"; fail "cmake --install failed"; }
rm -f "$dest.log"
bin=$dest/usr/bin/strata
man=$dest/usr/share/man/man1/strata.1
comp=$dest/usr/share/bash-completion/completions/strata
for f in "$bin" "$man" "$comp"; do
	[ -f "$f" ] || fail "$f not installed"
done
[ -x "$bin" ] || fail "$bin not executable"

# roff's escapes undone: \- is -, \e is a backslash, \& nothing
text=$(sed -e 's/\\-/-/g' -e 's/\\e/\\/g' -e 's/\\&//g' "$man")
opts=$("$bin" run --help | grep -E '^  --' | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u)
[ "$(echo "$opts" | wc -l)" -ge 15 ] || fail "too few options in strata run --help: $opts"
for o in $opts; do
	grep -qF -- "$o" <<< "$text" || fail "the man page lacks $o"
	grep -qE -- "(^| |\")$o( |\")" "$comp" || fail "the bash completion lacks $o"
done
for c in mtree status stats pause resume reset powerdown quit hmp qmp migrate; do
	grep -qE "^  $c( |\$)|^  [a-z]+ \| $c " <<< "$text" || fail "the man page lacks ctl's $c"
done
grep -qF "$("$bin" --version)" "$man" || fail "the man page does not name $("$bin" --version)"
bash -n "$comp" || fail "$comp is not valid bash"
# the completion completes: `strata run --mem` offers --memory
words=$(bash -c 'source "$1"; COMP_WORDS=(strata run --mem); COMP_CWORD=2; _strata; echo "${COMPREPLY[*]}"' _ "$comp")
[ "$words" = "--memory" ] || fail "completing 'strata run --mem' gave '$words'"
words=$(bash -c 'source "$1"; COMP_WORDS=(strata run --me); COMP_CWORD=2; _strata; echo "${COMPREPLY[*]}"' _ "$comp")
[ "$words" = "--memory --metrics" ] || fail "completing 'strata run --me' gave '$words'"
echo "install.files: strata, strata.1 ($(echo "$opts" | wc -l) options) and the bash completion installed"
