#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# test_sdk_pkgconfig.sh BUILD_DIR SOURCE_DIR
#
# The SDK as a plugin author meets it: install the project into a temporary
# DESTDIR, build sdk/template/example_input.c out of tree with nothing but
# pkg-config and cc, check the result exports gd_plugin_entry, and run the
# installed daemon's --once with it. Then the same with the template's
# Makefile (make; make install into the plugin directory).
set -euo pipefail

BUILD=${1:?usage: test_sdk_pkgconfig.sh BUILD_DIR SOURCE_DIR}
SRC=${2:?usage: test_sdk_pkgconfig.sh BUILD_DIR SOURCE_DIR}
CC=${CC:-cc}

fail() {
    echo "test_sdk_pkgconfig: FAIL: $*" >&2
    exit 1
}
step() {
    echo "test_sdk_pkgconfig: $*"
}

for tool in pkg-config "$CC" nm readelf; do
    command -v "$tool" >/dev/null || fail "'$tool' is not installed"
done
[ -f "$SRC/sdk/template/example_input.c" ] || fail "no sdk/template/example_input.c under '$SRC'"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/gatherd-sdk.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
dest=$tmp/dest
work=$tmp/work
mkdir -p "$work"

# ---- install ------------------------------------------------------------
step "meson install into $dest"
# --no-rebuild: meson test has built everything; a nested ninja run is not wanted.
meson install -C "$BUILD" --destdir "$dest" --quiet --no-rebuild >"$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log" >&2; fail "meson install failed (is '$BUILD' built?)"; }

pc=$(find "$dest" -path '*/pkgconfig/gatherd.pc' -type f | head -n 1)
[ -n "$pc" ] || fail "no pkgconfig/gatherd.pc under $dest"
lib=$(find "$dest" -name 'libgatherd.so.1' | head -n 1)
[ -n "$lib" ] || fail "no libgatherd.so.1 under $dest"
daemon=$(find "$dest" -path '*/bin/gatherd' -type f | head -n 1)
[ -n "$daemon" ] || fail "no bin/gatherd under $dest"
[ -x "$daemon" ] || fail "no executable bin/gatherd under $dest"
soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = "libgatherd.so.1" ] || fail "libgatherd's soname is '$soname', not libgatherd.so.1"

# ---- pkg-config ---------------------------------------------------------
# The .pc names the final prefix (/usr/local/...); the sysroot maps it into
# the DESTDIR, as it would for a cross or staged build.
export PKG_CONFIG_PATH=${pc%/*}
export PKG_CONFIG_SYSROOT_DIR=$dest
cflags=$(pkg-config --cflags gatherd) || fail "pkg-config --cflags gatherd failed"
libs=$(pkg-config --libs gatherd) || fail "pkg-config --libs gatherd failed"
plugindir=$(pkg-config --variable=plugindir gatherd) || fail "pkg-config --variable=plugindir failed"
step "pkg-config: $cflags $libs; plugindir $plugindir"
case " $cflags " in
*" -I$dest/"*) ;;
*) fail "pkg-config --cflags does not point into the DESTDIR: '$cflags'" ;;
esac
case " $libs " in
*" -L$dest/"*" -lgatherd "*) ;;
*) fail "pkg-config --libs does not give -L<destdir> -lgatherd: '$libs'" ;;
esac
incdir=${cflags#-I}
incdir=${incdir%% *}
[ -f "$incdir/gatherd/gatherd.h" ] || fail "$incdir/gatherd/gatherd.h is not installed"
[ -d "$plugindir" ] || fail "plugindir $plugindir does not exist in the DESTDIR"
[ -f "$plugindir/null.so" ] || fail "the installed plugin directory lacks null.so"

# ---- build the template out of tree --------------------------------------
cp "$SRC/sdk/template/example_input.c" "$SRC/sdk/template/Makefile" "$work/"
step "cc -shared -fPIC \$(pkg-config --cflags --libs gatherd) -o loadavg.so example_input.c"
# shellcheck disable=SC2046 # word splitting of pkg-config's output is intended
(cd "$work" && "$CC" -shared -fPIC -Wall -Wextra -Werror $(pkg-config --cflags --libs gatherd) \
    -o loadavg.so example_input.c) || fail "the template does not build out of tree"

check_exports() { # LABEL
    nm -D --defined-only "$work/loadavg.so" >"$tmp/nm.txt" || fail "$1: nm -D failed on loadavg.so"
    grep -Eq '^[0-9a-f]+ T gd_plugin_entry$' "$tmp/nm.txt" ||
        { cat "$tmp/nm.txt" >&2; fail "$1: loadavg.so does not export gd_plugin_entry"; }
}
check_exports "cc build"
readelf -d "$work/loadavg.so" | grep -q 'NEEDED.*\[libgatherd\.so\.1\]' ||
    fail "cc build: loadavg.so does not record NEEDED libgatherd.so.1 (pkg-config --libs before the source)"

# ---- run the installed daemon with it ----------------------------------------
printf '0.52 0.58 0.59 1/234 5678\n' >"$work/loadavg.txt"
cat >"$work/gatherd.conf" <<EOF
inputs = ( { plugin = "loadavg"; name = "load"; path = "$work/loadavg.txt";
             host_tag = false; tags = { site = "sdk-test"; }; } );
outputs = ( { plugin = "null"; name = "sink"; } );
EOF
export LD_LIBRARY_PATH=${lib%/*}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
want='^loadavg,site=sdk-test load1=0\.52,load5=0\.58,load15=0\.59,procs_running=1i,procs_total=234i [0-9]+$'

run_once() { # PLUGIN_PATH LABEL
    GATHERD_PLUGIN_PATH=$1 "$daemon" -t -c "$work/gatherd.conf" >"$tmp/check.out" 2>&1 ||
        { cat "$tmp/check.out" >&2; fail "$2: gatherd -t rejects the configuration"; }
    GATHERD_PLUGIN_PATH=$1 "$daemon" --once --input load -c "$work/gatherd.conf" \
        >"$tmp/once.out" 2>"$tmp/once.err" ||
        { cat "$tmp/once.out" "$tmp/once.err" >&2; fail "$2: gatherd --once failed"; }
    grep -Eq "$want" "$tmp/once.out" ||
        { cat "$tmp/once.out" "$tmp/once.err" >&2; fail "$2: no loadavg point line in --once output"; }
    step "$2: $(head -n 1 "$tmp/once.out")"
}

run_once "$plugindir:$work" "cc build"

# ---- the template's Makefile ---------------------------------------------------
if command -v make >/dev/null; then
    rm -f "$work/loadavg.so"
    make -C "$work" --no-print-directory CFLAGS="-O2 -Wall -Wextra -Werror" >"$tmp/make.log" 2>&1 ||
        { cat "$tmp/make.log" >&2; fail "make does not build the template"; }
    check_exports "make"
    # The Makefile links libgatherd after the sources, so even with the
    # --as-needed linking of Debian's gcc the plugin depends on the soname
    # (what a distribution's shlibs tracking reads).
    readelf -d "$work/loadavg.so" | grep -q 'NEEDED.*\[libgatherd\.so\.1\]' ||
        fail "make: loadavg.so does not record libgatherd.so.1 as a dependency"
    # With the sysroot set, plugindir already points into the DESTDIR.
    make -C "$work" --no-print-directory install >>"$tmp/make.log" 2>&1 ||
        { cat "$tmp/make.log" >&2; fail "make install failed"; }
    [ -f "$plugindir/loadavg.so" ] || fail "make install did not put loadavg.so in $plugindir"
    rm -f "$work/loadavg.so"
    run_once "$plugindir" "make install"
else
    step "make not installed: Makefile not checked"
fi

step "OK"
