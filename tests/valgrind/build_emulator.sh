#!/bin/sh
# Builds OTP's valgrind emulator (beam.valgrind.smp, non-JIT) from the Debian source of the
# installed Erlang under $1 (default _build/valgrind), and $1/bin for BINDIR: that emulator
# and its erl_child_setup, erlexec and inet_gethost from the system's erts.
# Why: Debian ships only the JIT beam.smp, which crashes under valgrind.
# Done once; later calls return at once.
set -eu
V=$(realpath -m "${1:-_build/valgrind}")
[ -x "$V/bin/beam.valgrind.smp" ] && exit 0
ERTS_VSN=$(erl -noshell -eval 'io:format("~s", [erlang:system_info(version)]), halt().')
SYS_BIN=$(erl -noshell -eval 'io:format("~ts/erts-~ts/bin", [code:root_dir(), erlang:system_info(version)]), halt().')

need=
command -v valgrind >/dev/null || need="$need valgrind"
command -v dpkg-source >/dev/null || need="$need dpkg-dev"
if [ -n "$need" ]; then
    SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need >/dev/null
fi

start=$(date +%s)
rm -rf "$V/apt" "$V/src" "$V/otp" "$V/bin"
mkdir -p "$V/apt/lists/partial" "$V/apt/cache/archives/partial" "$V/src"
# Source indexes of this Debian release in a private apt state: the system's is untouched.
. /etc/os-release
for s in "debian $VERSION_CODENAME" "debian $VERSION_CODENAME-updates" \
         "debian-security $VERSION_CODENAME-security"; do
    set -- $s
    echo "deb-src http://deb.debian.org/$1 $2 main"
done > "$V/apt/sources.list"
APT="-q -o Dir::Etc::SourceList=$V/apt/sources.list -o Dir::Etc::SourceParts=/dev/null
     -o Dir::State::Lists=$V/apt/lists -o Dir::Cache=$V/apt/cache"
apt-get $APT update >/dev/null
DEB_VSN=$(dpkg-query -W -f '${Version}' erlang-base)
echo "==> valgrind: fetching the Debian source of erlang $DEB_VSN (erts $ERTS_VSN)"
# The installed revision if the archive still has it; any other must pass the erts check.
(cd "$V/src" && { apt-get $APT source --download-only "erlang=$DEB_VSN" >/dev/null 2>&1 ||
                  apt-get $APT source --download-only erlang >/dev/null; })
# apt checked the files against the signed Sources index; dpkg-source's own gpgv check of
# the uploader's key (not in the keyring) only warns, so its output goes to the log.
dpkg-source -x "$V"/src/erlang_*.dsc "$V/otp" > "$V/unpack.log" 2>&1 || { tail "$V/unpack.log"; exit 1; }
SRC_VSN=$(sed -n 's/^VSN *= *//p' "$V/otp/erts/vsn.mk")
[ "$SRC_VSN" = "$ERTS_VSN" ] || { echo "the source has erts $SRC_VSN, the system runs $ERTS_VSN" >&2; exit 1; }

echo "==> valgrind: building beam.valgrind.smp (erts $SRC_VSN, FLAVOR=emu)"
cd "$V/otp"
export ERL_TOP="$PWD"
./configure --disable-jit --without-termcap --without-javac --without-wx --without-odbc \
    > "$V/configure.log" 2>&1 || { tail -30 "$V/configure.log"; exit 1; }
make -C erts/emulator valgrind FLAVOR=emu -j"$(nproc)" > "$V/make.log" 2>&1 ||
    { tail -30 "$V/make.log"; exit 1; }

mkdir -p "$V/bin"
ln -s "$SYS_BIN/erlexec" "$SYS_BIN/inet_gethost" "$V"/otp/bin/*/erl_child_setup.valgrind "$V/bin/"
ln -s "$V"/otp/bin/*/beam.valgrind.smp "$V/bin/"
echo "==> valgrind: emulator built in $(( $(date +%s) - start )) s"
