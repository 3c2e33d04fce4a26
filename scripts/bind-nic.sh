#!/usr/bin/env bash
# Hand a NIC to DPDK (vfio-pci) or give it back to the kernel (docs/deploy.md).
# A wrapper around dpdk-devbind.py (Debian package "dpdk").
#
#   scripts/bind-nic.sh --status                       network devices and their drivers
#   scripts/bind-nic.sh 0000:3b:00.1                   load vfio-pci and bind the device to it
#   scripts/bind-nic.sh eth1                           the same, by kernel interface name
#   scripts/bind-nic.sh --driver ixgbe 0000:3b:00.1    give it back to a kernel driver
#   scripts/bind-nic.sh --unbind 0000:3b:00.1          leave it without a driver
#
# It refuses to take a device whose interface carries a default route (you
# would cut the machine off the network, or your own SSH session) unless
# --force is given. Binding does not survive a reboot: run it from a boot
# unit (docs/deploy.md) or use driverctl.
#
# Then capture from it with EAL arguments such as
#   eal: "-l 0-2 -a 0000:3b:00.1"
set -euo pipefail

say() { printf 'bind-nic: %s\n' "$*"; }
die() { printf 'bind-nic: %s\n' "$*" >&2; exit 1; }

usage() {
	sed -n '2,18s/^# \{0,1\}//p' "$0"
	exit "${1:-0}"
}

driver=vfio-pci force=0 status=0 unbind=0 dev=""
while [ $# -gt 0 ]; do
	case "$1" in
	--status | -s) status=1; shift ;;
	--driver) [ $# -ge 2 ] || die "--driver needs a driver name"; driver=$2; shift 2 ;;
	--driver=*) driver=${1#--driver=}; shift ;;
	--unbind | -u) unbind=1; shift ;;
	--force) force=1; shift ;;
	-h | --help) usage 0 ;;
	-*) die "unknown option $1 (see --help)" ;;
	*) [ -z "$dev" ] || die "one device at a time, got $dev and $1"; dev=$1; shift ;;
	esac
done

devbind=$(command -v dpdk-devbind.py || true)
for p in /usr/bin/dpdk-devbind.py /usr/share/dpdk/usertools/dpdk-devbind.py /usr/local/bin/dpdk-devbind.py; do
	[ -n "$devbind" ] && break
	[ -x "$p" ] && devbind=$p
done
[ -n "$devbind" ] || die "dpdk-devbind.py not found: apt-get install dpdk"

if [ "$status" = 1 ]; then
	exec "$devbind" --status-dev net
fi
[ -n "$dev" ] || usage 2
[ "$(id -u)" = 0 ] || die "must run as root to bind devices (try: sudo $0 ...)"

# pci_of IFACE: the PCI address behind a kernel interface (walking up past
# virtio and similar intermediate devices).
pci_of() {
	local p
	p=$(readlink -f "/sys/class/net/$1/device" 2>/dev/null) || return 1
	while [ "$p" != / ] && [ -n "$p" ]; do
		if [[ "${p##*/}" =~ ^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$ ]]; then
			echo "${p##*/}"
			return 0
		fi
		p=${p%/*}
	done
	return 1
}

# ifaces_of ADDR: the kernel interfaces a PCI device carries now.
ifaces_of() {
	local i a
	for i in /sys/class/net/*; do
		i=${i##*/}
		a=$(pci_of "$i") || continue
		[ "$a" = "$1" ] && echo "$i"
	done
	return 0
}

# Resolve DEVICE: an interface name or a PCI address (bus:slot.func is
# completed with domain 0000).
if [ -e "/sys/class/net/$dev" ]; then
	addr=$(pci_of "$dev") || die "interface $dev is not a PCI device (a virtual interface? use a --vdev instead)"
elif [[ "$dev" =~ ^[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$ ]]; then
	addr=0000:${dev,,}
else
	addr=${dev,,}
fi
[ -d "/sys/bus/pci/devices/$addr" ] || die "no PCI device $addr (see --status)"

cur=$(basename "$(readlink -f "/sys/bus/pci/devices/$addr/driver" 2>/dev/null)" 2>/dev/null || true)
[ "$cur" = driver ] && cur=""
if [ "$unbind" = 0 ] && [ "$cur" = "$driver" ]; then
	say "$addr is already bound to $driver"
	exit 0
fi
if [ "$unbind" = 1 ] && [ -z "$cur" ]; then
	say "$addr has no driver already"
	exit 0
fi

# Refuse to take an interface that carries a default route.
ifaces=$(ifaces_of "$addr")
if [ -n "$ifaces" ]; then
	command -v ip >/dev/null || die "ip not found (apt-get install iproute2): cannot check the default route"
	routed=""
	for i in $ifaces; do
		if ip -4 route show default 2>/dev/null | grep -qw "dev $i" ||
			ip -6 route show default 2>/dev/null | grep -qw "dev $i"; then
			routed="$routed $i"
		fi
	done
	if [ -n "$routed" ]; then
		if [ "$force" = 0 ]; then
			die "refusing: $addr is interface${routed} and carries the default route; taking it would cut this machine off the network. Use --force if you mean it."
		fi
		say "warning: --force: taking$routed, which carries the default route" >&2
	fi
	for i in $ifaces; do
		if [ -n "$(ip -o addr show dev "$i" 2>/dev/null | awk '$3 == "inet" || ($3 == "inet6" && $4 !~ /^fe80/)')" ]; then
			say "note: $i has IP addresses; they go away with the interface" >&2
		fi
	done
fi

if [ "$unbind" = 1 ]; then
	args=(-u "$addr")
else
	if [ "$driver" = vfio-pci ]; then
		if [ ! -d /sys/bus/pci/drivers/vfio-pci ]; then
			command -v modprobe >/dev/null || die "modprobe not found (apt-get install kmod)"
			modprobe vfio-pci || die "could not load vfio-pci"
			say "loaded vfio-pci"
		fi
		if [ -z "$(ls -A /sys/kernel/iommu_groups 2>/dev/null)" ]; then
			if [ "$(cat /sys/module/vfio/parameters/enable_unsafe_noiommu_mode 2>/dev/null)" != Y ]; then
				die "no IOMMU groups: enable the IOMMU (BIOS VT-d/AMD-Vi, and intel_iommu=on iommu=pt on the kernel command line), or, on a machine you trust, echo 1 > /sys/module/vfio/parameters/enable_unsafe_noiommu_mode"
			fi
			say "warning: vfio no-IOMMU mode: the device can DMA anywhere in memory" >&2
		fi
	fi
	args=(-b "$driver" "$addr")
fi
[ "$force" = 1 ] && args=(--force "${args[@]}")

say "${cur:-no driver} -> $([ "$unbind" = 1 ] && echo 'no driver' || echo "$driver"): $addr${ifaces:+ (was $(echo $ifaces))}"
"$devbind" "${args[@]}"
"$devbind" --status-dev net
if [ "$unbind" = 0 ] && [ "$driver" = vfio-pci ]; then
	grp=$(basename "$(readlink -f "/sys/bus/pci/devices/$addr/iommu_group" 2>/dev/null)" 2>/dev/null || true)
	[ -n "$grp" ] && say "VFIO group /dev/vfio/$grp; capture with EAL arguments \"-a $addr\""
fi
