#!/bin/sh
# Build the test kernel for the Linux-guest tests and benchmarks from Debian's
# linux-source package, and cache it.
#
#   tests/linux/build-kernel.sh               build if needed; print the two paths
#   tests/linux/build-kernel.sh --print-path  print the cache directory (no build)
#   tests/linux/build-kernel.sh --check       exit 0 if the kernel is cached
#   tests/linux/build-kernel.sh --variant cad [...]
#                                             the same with kernel-cad.config
#                                             merged after kernel.config
#
# The kernel lands in $XTOP_LINUX_CACHE/<key>/{vmlinux,bzImage,config}
# (default ~/.cache/xtop-linux), where <key> hashes this script, the config
# fragments, the patches and the linux-source package version: change any of
# them and the next run rebuilds; each variant has its own key. The extracted, patched source tree stays in
# $XTOP_LINUX_CACHE/src/<version>-<patches hash>/ so a fragment change is an
# incremental rebuild. Progress goes to stderr, the paths to stdout.
#
# Steps: install linux-source-$LINUX_SERIES and the build dependencies with
# apt if missing, extract, apply tests/linux/patches/*.patch, `make
# tinyconfig`, merge tests/linux/kernel.config (and the variant's fragment),
# `make olddefconfig`, check that every line of the fragments (the last one
# per option) made it into .config, `make -j$JOBS
# bzImage` (which builds vmlinux too), install.
set -eu

LINUX_SERIES=${LINUX_SERIES:-6.1}
PKG=linux-source-$LINUX_SERIES
TARBALL=/usr/src/$PKG.tar.xz
JOBS=${JOBS:-2}
HERE=$(cd "$(dirname "$0")" && pwd)
SCRIPT="$HERE/$(basename "$0")"
FRAGMENTS="$HERE/kernel.config"
CACHE=${XTOP_LINUX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/xtop-linux}
BUILD_DEPS="build-essential bc flex bison libelf-dev libssl-dev"

mode=build
while [ $# -gt 0 ]; do
    case "$1" in
        --print-path) mode=print ;;
        --check) mode=check ;;
        --variant)
            [ $# -ge 2 ] || { echo "build-kernel.sh: --variant NAME" >&2; exit 2; }
            case "$2" in
                *[!a-z0-9]* | "") echo "build-kernel.sh: bad variant: $2" >&2; exit 2 ;;
            esac
            [ -f "$HERE/kernel-$2.config" ] || {
                echo "build-kernel.sh: no $HERE/kernel-$2.config" >&2
                exit 2
            }
            FRAGMENTS="$FRAGMENTS $HERE/kernel-$2.config"
            shift
            ;;
        -h|--help) sed -n '2,24p' "$SCRIPT" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-kernel.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

say() { echo "build-kernel.sh: $*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

missing_packages() {
    for p in "$@"; do
        st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
        [ "$st" = "install ok installed" ] || echo "$p"
    done
}

ensure_packages() {
    need=$(missing_packages "$@")
    [ -z "$need" ] && return 0
    say "installing with apt: $need"
    # shellcheck disable=SC2086
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 \
        install -y --no-install-recommends $need >&2 || {
        as_root apt-get -o DPkg::Lock::Timeout=600 update >&2
        # shellcheck disable=SC2086
        as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 \
            install -y --no-install-recommends $need >&2
    }
}

# The contents only: `sha256sum FILE...` prints the paths too, which made
# the key differ per checkout (every worktree and CI path rebuilt).
hash_files() {
    for f in "$@"; do sha256sum <"$f"; done | sha256sum | cut -c1-16
}

patches() {
    ls "$HERE"/patches/*.patch 2>/dev/null | LC_ALL=C sort
}

# The key needs the package version; --print-path/--check must not install
# anything, so they read the version only if the package is there.
if [ "$mode" = build ]; then
    ensure_packages "$PKG"
fi
version=$(dpkg-query -W -f='${Version}' "$PKG" 2>/dev/null || true)
if [ -z "$version" ]; then
    [ "$mode" = check ] && exit 1
    say "$PKG is not installed (run without arguments to install and build)"
    exit 1
fi

# shellcheck disable=SC2046
patch_key=$(hash_files /dev/null $(patches))
# shellcheck disable=SC2046
key=$( (hash_files "$SCRIPT" $FRAGMENTS $(patches); echo "$PKG $version") | sha256sum | cut -c1-16)
out="$CACHE/$key"

case "$mode" in
    print) echo "$out"; exit 0 ;;
    check) [ -f "$out/vmlinux" ] && [ -f "$out/bzImage" ]; exit $? ;;
esac

print_paths() {
    echo "$out/vmlinux"
    echo "$out/bzImage"
}

if [ -f "$out/vmlinux" ] && [ -f "$out/bzImage" ]; then
    print_paths
    exit 0
fi

mkdir -p "$CACHE"
# One build at a time (tests may call this concurrently).
exec 9>"$CACHE/.lock"
flock 9
if [ -f "$out/vmlinux" ] && [ -f "$out/bzImage" ]; then
    print_paths
    exit 0
fi

ensure_packages $BUILD_DEPS

src="$CACHE/src/$version-$patch_key"
if [ ! -f "$src/.xtop-ready" ]; then
    say "extracting $TARBALL into $src"
    rm -rf "$src"
    mkdir -p "$src"
    tar -xJf "$TARBALL" -C "$src" --strip-components=1
    for p in $(patches); do
        say "applying $(basename "$p")"
        patch -d "$src" -p1 --forward --quiet <"$p" >&2
    done
    touch "$src/.xtop-ready"
fi

cd "$src"
# Fixed build identity so the banner does not depend on the host or the clock.
export KBUILD_BUILD_USER=xtop KBUILD_BUILD_HOST=test-kernel
export KBUILD_BUILD_TIMESTAMP="$version"

names=$(for f in $FRAGMENTS; do basename "$f"; done | tr '\n' ' ')
say "configuring (tinyconfig + ${names% })"
make -s tinyconfig >&2
# shellcheck disable=SC2086
scripts/kconfig/merge_config.sh -m .config $FRAGMENTS >/dev/null
make -s olddefconfig >&2

# Every line of the fragments must survive olddefconfig: an option whose
# dependencies are missing is silently dropped, which is how a config rots.
# A later fragment overrides an earlier one, so only the last line per
# option counts.
wanted=$(mktemp)
trap 'rm -f "$wanted"' EXIT
# shellcheck disable=SC2086
cat $FRAGMENTS | awk '
    /^CONFIG_[A-Za-z0-9_]*=/ { opt = $0; sub(/=.*/, "", opt) }
    /^# CONFIG_[A-Za-z0-9_]* is not set$/ { opt = $2 }
    opt != "" { if (!(opt in last)) order[n++] = opt; last[opt] = $0; opt = "" }
    END { for (i = 0; i < n; i++) print last[order[i]] }
' >"$wanted"
bad=0
while IFS= read -r line; do
    case "$line" in
        CONFIG_*=*)
            grep -qxF -- "$line" .config || {
                have=$(grep -E "^(# )?${line%%=*}[= ]" .config || echo "absent")
                say "fragment asks '$line', .config has '$have'"
                bad=1
            }
            ;;
        "# CONFIG_"*" is not set")
            opt=${line#\# }
            opt=${opt%% *}
            if grep -qE "^$opt=" .config; then
                say "fragment asks '$line', .config has '$(grep -E "^$opt=" .config)'"
                bad=1
            fi
            ;;
    esac
done <"$wanted"
if [ "$bad" != 0 ]; then
    say "the config fragments did not survive olddefconfig (see above)"
    exit 1
fi

say "building bzImage and vmlinux with -j$JOBS in $src"
start=$(date +%s)
make -j"$JOBS" bzImage >&2
say "built in $(($(date +%s) - start)) s"

tmp="$out.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp"
cp vmlinux "$tmp/vmlinux"
cp arch/x86/boot/bzImage "$tmp/bzImage"
cp .config "$tmp/config"
echo "$PKG $version" >"$tmp/source"
rm -rf "$out"
mv "$tmp" "$out"
print_paths
