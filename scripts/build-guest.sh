#!/usr/bin/env bash
# Builds the Linux guest artifacts for the end-to-end tests from Debian
# packages only (conventions: scripts/guest/README.md):
#   bzImage            Debian's cloud kernel (linux-image-6.1.*-cloud-amd64)
#   vmlinux            the uncompressed ELF extracted from it (PVH entry note)
#   modules/           the virtio (+kvm, tun, pvpanic, ACPI button) subset of its module tree
#   initramfs.cpio.gz  the L2 guest's busybox initramfs (init marker, strata.cmd)
#   l1-base.cpio       the nested test bed's first-level initramfs (uncompressed):
#                      busybox, kvm modules, and the L2 artifacts under /bed/guest
# into a cache folder (default: <repo>/.cache/guest, git-ignored).  Rebuilt only
# when the inputs change: a hash of this script, scripts/guest/ and the package
# versions.  Prints the artifact folder on stdout.
#
# Usage: scripts/build-guest.sh [--cache DIR] [--force] [--quiet]
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${STRATA_GUEST_CACHE:-$REPO/.cache/guest}
FORCE=0
QUIET=0
while [ $# -gt 0 ]; do
  case "$1" in
    --cache) CACHE=$2; shift 2 ;;
    --force) FORCE=1; shift ;;
    --quiet) QUIET=1; shift ;;
    -h|--help) sed -n '2,16p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "build-guest: unknown option '$1'" >&2; exit 2 ;;
  esac
done

log() { [ "$QUIET" = 1 ] || echo "build-guest: $*" >&2; }
die() { echo "build-guest: $*" >&2; exit 1; }

for tool in apt-cache apt-get dpkg-deb lz4 cpio gzip python3 strings sha256sum; do
  command -v "$tool" >/dev/null || die "'$tool' not found (run scripts/install-deps.sh)"
done

META=${STRATA_GUEST_KERNEL_META:-linux-image-cloud-amd64}

# The meta package depends on the real, versioned kernel package.
resolve() {
  apt-cache depends "$META" 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-cloud-amd64\)$/\1/p' | head -n1
}
KPKG=$(resolve || true)
if [ -z "$KPKG" ]; then
  if [ "$(id -u)" -eq 0 ]; then
    log "apt lists do not know $META; running apt-get update"
    apt-get -o DPkg::Lock::Timeout=600 update -q >&2 || true
    KPKG=$(resolve || true)
  fi
  [ -n "$KPKG" ] || die "cannot resolve $META to a linux-image-*-cloud-amd64 package (apt-get update as root?)"
fi
candidate() { apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: //p' | head -n1; }
KVER=$(candidate "$KPKG")
BBVER=$(candidate busybox-static)
[ -n "$KVER" ] && [ "$KVER" != "(none)" ] || die "no candidate version for $KPKG"
[ -n "$BBVER" ] && [ "$BBVER" != "(none)" ] || die "no candidate version for busybox-static"

HASH=$( {
  echo "$KPKG=$KVER busybox-static=$BBVER"
  cat "${BASH_SOURCE[0]}"
  for f in "$REPO"/scripts/guest/*; do echo "== $(basename "$f")"; cat "$f"; done
} | sha256sum | cut -c1-16)

OUT=$CACHE/$HASH
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9
if [ "$FORCE" = 0 ] && [ -f "$OUT/stamp" ]; then
  ln -sfn "$HASH" "$CACHE/current"
  echo "$OUT"
  exit 0
fi

log "building $OUT ($KPKG $KVER, busybox-static $BBVER)"
DEBS=$CACHE/debs
mkdir -p "$DEBS"
fetch() { # package version -> path of the .deb
  local pkg=$1 ver=$2 f
  f=$(ls "$DEBS"/"${pkg}"_*"${ver#*:}"_amd64.deb 2>/dev/null | head -n1 || true)
  if [ -z "$f" ]; then
    (cd "$DEBS" && apt-get download -q "$pkg=$ver" >&2) || die "apt-get download $pkg=$ver failed"
    f=$(ls "$DEBS"/"${pkg}"_*"${ver#*:}"_amd64.deb 2>/dev/null | head -n1 || true)
    [ -n "$f" ] || die "apt-get download $pkg=$ver: no .deb appeared in $DEBS"
  fi
  echo "$f"
}
KDEB=$(fetch "$KPKG" "$KVER")
BBDEB=$(fetch busybox-static "$BBVER")

WORK=$(mktemp -d "$CACHE/.build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
dpkg-deb -x "$KDEB" "$WORK/k"
dpkg-deb -x "$BBDEB" "$WORK/bb"
KREL=$(basename "$(ls -d "$WORK"/k/lib/modules/*/ | head -n1)")
[ -n "$KREL" ] || die "$KDEB: no lib/modules/<release>/"
VMLINUZ=$WORK/k/boot/vmlinuz-$KREL
[ -f "$VMLINUZ" ] || die "$KDEB: no boot/vmlinuz-$KREL"

R=$WORK/out
mkdir -p "$R"
cp "$VMLINUZ" "$R/bzImage"
cp "$WORK/k/boot/config-$KREL" "$R/config"
python3 "$REPO/scripts/guest/extract-vmlinux.py" "$R/bzImage" "$R/vmlinux"

# --- module subset, resolved through each module's own depends= tag ---
MODROOT=$WORK/k/lib/modules/$KREL
declare -A MODPATH=()
while IFS= read -r f; do
  n=$(basename "$f" .ko)
  MODPATH[$n]=$f
  MODPATH[${n//-/_}]=$f
done < <(find "$MODROOT/kernel" -name '*.ko')

ORDER=()
declare -A SEEN=()
add_mod() { # name: appends it after its dependencies; absent modules are skipped
  local n=$1 f deps d
  [ -z "${SEEN[$n]:-}" ] || return 0
  SEEN[$n]=1
  f=${MODPATH[$n]:-}
  if [ -z "$f" ]; then
    log "module $n not in $KREL (built in or absent): skipped"
    return 0
  fi
  deps=$(strings -a "$f" | sed -n 's/^depends=//p' | head -n1)
  for d in ${deps//,/ }; do add_mod "$d"; done
  ORDER+=("$(basename "$f" .ko)")
}
# button + evdev: the ACPI power button (strata's system_powerdown) as a
# KEY_POWER input event, which init-l2.sh's busybox acpid turns into poweroff.
L2_MODS=(virtio_ring virtio virtio_mmio virtio_blk failover net_failover virtio_net
         virtio_console virtio-rng virtio_balloon vmw_vsock_virtio_transport pvpanic
         pvpanic-mmio button evdev)
for m in "${L2_MODS[@]}"; do add_mod "$m"; done
L2_ORDER=("${ORDER[@]}")
ORDER=()
SEEN=() # L1 loads its own copies (vhost_vsock needs vsock, as L2 does)
# vhost_vsock: QEMU's vhost-vsock-device in the bed (scripts/bench-virtio.sh)
for m in irqbypass kvm kvm-amd tun vhost_vsock; do add_mod "$m"; done
L1_ORDER=("${ORDER[@]}")

mkdir -p "$R/modules/lib/modules/$KREL"
for n in "${L2_ORDER[@]}" "${L1_ORDER[@]}"; do
  f=${MODPATH[$n]}
  rel=${f#"$WORK/k/"}
  mkdir -p "$R/modules/$(dirname "$rel")"
  cp "$f" "$R/modules/$rel"
done
printf '%s\n' "${L2_ORDER[@]}" > "$R/modules/l2-load-order"
printf '%s\n' "${L1_ORDER[@]}" > "$R/modules/l1-load-order"

# --- a busybox root: the binary and a link per applet ---
bb_root() { # dir
  local d=$1 a
  mkdir -p "$d"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,mnt,run,etc,root,lib/modules}
  cp "$WORK/bb/bin/busybox" "$d/bin/busybox"
  while IFS= read -r a; do
    [ "$a" = bin/busybox ] && continue
    [ -e "$d/$a" ] || ln -s /bin/busybox "$d/$a"
  done < <("$WORK/bb/bin/busybox" --list-full)
  # device nodes the kernel needs before devtmpfs is mounted (cpio keeps them)
  mknod -m 600 "$d/dev/console" c 5 1 2>/dev/null || true
  mknod -m 666 "$d/dev/null" c 1 3 2>/dev/null || true
}
mkcpio() { # dir -> newc archive on stdout
  (cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0)
}

# --- L2 initramfs ---
L2=$WORK/l2
bb_root "$L2"
install -m 755 "$REPO/scripts/guest/init-l2.sh" "$L2/init"
for n in "${L2_ORDER[@]}"; do cp "${MODPATH[$n]}" "$L2/lib/modules/$n.ko"; done
printf '%s\n' "${L2_ORDER[@]}" > "$L2/lib/modules/load-order"
mkcpio "$L2" | gzip -9 -n > "$R/initramfs.cpio.gz"

# --- L1 base initramfs (uncompressed: TCG unpacks it faster than it inflates) ---
L1=$WORK/l1
bb_root "$L1"
install -m 755 "$REPO/scripts/guest/init-l1.sh" "$L1/init"
for n in "${L1_ORDER[@]}"; do cp "${MODPATH[$n]}" "$L1/lib/modules/$n.ko"; done
printf '%s\n' "${L1_ORDER[@]}" > "$L1/lib/modules/load-order"
mkdir -p "$L1/bed/guest" "$L1/bed/run"
cp "$R/bzImage" "$R/vmlinux" "$R/initramfs.cpio.gz" "$L1/bed/guest/"
mkcpio "$L1" > "$R/l1-base.cpio"

{
  echo "kernel_package=$KPKG"
  echo "kernel_version=$KVER"
  echo "kernel_release=$KREL"
  echo "busybox_version=$BBVER"
  echo "l2_modules=${L2_ORDER[*]}"
  echo "l1_modules=${L1_ORDER[*]}"
} > "$R/stamp"

rm -rf "$OUT"
mv "$R" "$OUT"
ln -sfn "$HASH" "$CACHE/current"
# keep the cache small: drop older artifact folders
for d in "$CACHE"/*/; do
  d=${d%/}
  case "$(basename "$d")" in "$HASH"|debs|current) ;; *) [ -f "$d/stamp" ] && rm -rf "$d" ;; esac
done
log "done: $(du -sh "$OUT" | cut -f1) in $OUT"
echo "$OUT"
