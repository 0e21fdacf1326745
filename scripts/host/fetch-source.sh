#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Provide a pristine Linux 7.3.x tree at $CACHE/pristine (a symlink).
#   KSRC=/path/to/linux   use a developer's own 7.3 tree instead of Debian's package.
# Debian's linux-source-7.3 is fetched with a private apt state, leaving the
# machine's apt configuration alone.

. "$(dirname "$0")/../lib.sh"

mkdir -p "$CACHE"
P=$CACHE/pristine

version_of() {
	local m=$1/Makefile v p s
	v=$(awk '$1 == "VERSION" { print $3; exit }' "$m")
	p=$(awk '$1 == "PATCHLEVEL" { print $3; exit }' "$m")
	s=$(awk '$1 == "SUBLEVEL" { print $3; exit }' "$m")
	echo "$v.$p.$s"
}

if [ -n "${KSRC:-}" ]; then
	[ -f "$KSRC/Makefile" ] || die "KSRC=$KSRC is not a kernel tree"
	KSRC=$(cd "$KSRC" && pwd)
	ver=$(version_of "$KSRC")
	case $ver in 7.3.*) ;; *) die "KSRC=$KSRC is Linux $ver; this project needs 7.3.x" ;; esac
	if [ "$(readlink "$P" 2>/dev/null)" != "$KSRC" ]; then
		ln -sfn "$KSRC" "$P"
	fi
	say "kernel source: Linux $ver from $KSRC"
	exit 0
fi

if [ -L "$P" ] && [ -f "$P/Makefile" ] && [ "$(readlink "$P")" = "$CACHE/linux-source-7.3" ]; then
	say "kernel source: Linux $(version_of "$P") (Debian linux-source-7.3, cached)"
	exit 0
fi

A=$CACHE/apt
mkdir -p "$A/lists/partial" "$A/cache/archives/partial"
MIRROR=$(awk '$1 == "URIs:" { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$MIRROR" ] || MIRROR=$(awk '$1 == "deb" { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$MIRROR" ] || MIRROR=http://deb.debian.org/debian
echo "deb $MIRROR trixie-backports main" >"$A/sources.list"
APT=(-o "Dir::Etc::sourcelist=$A/sources.list" -o Dir::Etc::sourceparts=/nonexistent
     -o "Dir::State::Lists=$A/lists" -o "Dir::Cache=$A/cache" -o Debug::NoLocking=1)

deb=$(ls "$CACHE"/linux-source-7.3_*.deb 2>/dev/null | tail -1 || true)
if [ -z "$deb" ]; then
	say "downloading Debian linux-source-7.3 from $MIRROR trixie-backports"
	apt-get "${APT[@]}" update -qq || die "apt-get update of trixie-backports failed"
	(cd "$CACHE" && apt-get "${APT[@]}" download linux-source-7.3 2>&1 |
		grep -v 'unsandboxed' || true)
	deb=$(ls "$CACHE"/linux-source-7.3_*.deb 2>/dev/null | tail -1 || true)
	[ -n "$deb" ] || die "could not download linux-source-7.3"
fi
say "unpacking $(basename "$deb")"
rm -rf "$CACHE/pkg" "$CACHE/linux-source-7.3"
dpkg-deb -x "$deb" "$CACHE/pkg"
tar -xJf "$CACHE"/pkg/usr/src/linux-source-7.3.tar.xz -C "$CACHE"
rm -rf "$CACHE/pkg"
ver=$(version_of "$CACHE/linux-source-7.3")
case $ver in 7.3.*) ;; *) die "Debian package holds Linux $ver, not 7.3.x" ;; esac
ln -sfn "$CACHE/linux-source-7.3" "$P"
say "kernel source: Linux $ver (Debian linux-source-7.3)"
