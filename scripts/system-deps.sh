#!/usr/bin/env bash
# Install the Debian packages a make target needs, only those missing, and quietly.
# Usage: scripts/system-deps.sh run|test|bench
# As root it runs apt-get; otherwise it names what is missing and how to get it.
set -euo pipefail

# libvirt-python builds from source: it needs the headers, pkg-config and a compiler.
# Rolls: createrepo_c makes the distribution's repository metadata, bsdtar reads roll ISOs.
# nginx faces the nodes in front of the HTTP workers (provisionerd runs its own, never the
# system's service).
RUN_PKGS="libvirt-dev pkg-config gcc createrepo-c libarchive-tools nginx"
# The suite also starts PostgreSQL, dnsmasq, QEMU PXE clients and libvirtd of its own, and
# validates kickstarts; benchmarks compare with tftpd-hpa and dnsmasq (dnsperf drives DNS).
E2E_PKGS="qemu-system-x86 ipxe-qemu ipxe pxelinux syslinux-common dnsmasq-base busybox-static ovmf \
libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients cpio"
# rpm: the roll tests build small RPMs with rpmbuild; atftp and curl: TFTP interoperability.
TEST_PKGS="$RUN_PKGS postgresql iproute2 rpm atftp curl $E2E_PKGS"
# The boot storm checks every download with xxhsum (xxhash) and loads with wrk and curl.
BENCH_PKGS="$TEST_PKGS tftpd-hpa dnsperf wrk xxhash"

case "${1:-run}" in
  run) want=$RUN_PKGS ;;
  test) want=$TEST_PKGS ;;
  bench) want=$BENCH_PKGS ;;
  *) echo "usage: $0 run|test|bench" >&2; exit 2 ;;
esac

missing=()
for p in $want; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# A Python without venv/ensurepip (Debian's python3 without python3-venv) cannot make the virtualenv.
PY=${PYTHON:-python3}
if ! "$PY" -c "import ensurepip, venv" >/dev/null 2>&1; then
  missing+=("python3-venv")
fi
# Compiling libvirt-python needs Python.h for the interpreter we build the venv with.
if ! "$PY" -c "import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))"; then
  missing+=("python3-dev")
fi

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "error: missing Debian packages: ${missing[*]}" >&2
  echo "       install them as root:  apt-get install --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
# Packages such as nginx and tftpd-hpa start a system service when installed; provisionerd
# runs its own and the service would take port 80 or 69. Unless the machine already has a
# policy, forbid service starts for the time of this install (Debian's policy-rc.d).
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# provisioner scripts/system-deps.sh: no service starts during its install\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  trap 'rm -f "$log" "$policy"' EXIT
else
  trap 'rm -f "$log"' EXIT
fi
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "error: apt-get could not install: ${missing[*]}" >&2
  exit 1
fi
