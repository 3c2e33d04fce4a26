#!/usr/bin/env bash
# Reserve hugepages for DPDK and mount hugetlbfs (docs/deploy.md).
#
#   scripts/hugepages.sh --status                 what is reserved, free and mounted
#   scripts/hugepages.sh 1024                     1024 x 2 MiB pages (2 GiB), now
#   scripts/hugepages.sh --size 1G 4              4 x 1 GiB pages, now (if the kernel can)
#   scripts/hugepages.sh --node 0 1024            on NUMA node 0 only (the NIC's node)
#   scripts/hugepages.sh --persist 1024           ... and keep them across reboots
#
# Idempotent: a reservation that is already large enough and a mount that is
# already there are left alone. Without --persist nothing under /etc is
# written; the lines that would make it persistent are printed instead.
#
# Sizing: tapvault's mempool is --mbufs per queue (default 8191) x ~2.3 KiB
# (2176-byte data room + mbuf header), about 19 MiB per queue, plus DPDK's
# own heap; 512 x 2 MiB (1 GiB) is ample
# for a few queues. Block buffers and zstd live in ordinary Go memory, not in
# hugepages.
set -euo pipefail

say() { printf 'hugepages: %s\n' "$*"; }
die() { printf 'hugepages: %s\n' "$*" >&2; exit 1; }

usage() {
	sed -n '2,18s/^# \{0,1\}//p' "$0"
	exit "${1:-0}"
}

size=2M persist=0 status=0 node="" count=""
while [ $# -gt 0 ]; do
	case "$1" in
	--size) [ $# -ge 2 ] || die "--size needs 2M or 1G"; size=$2; shift 2 ;;
	--size=*) size=${1#--size=}; shift ;;
	--node) [ $# -ge 2 ] || die "--node needs a NUMA node number"; node=$2; shift 2 ;;
	--node=*) node=${1#--node=}; shift ;;
	--persist) persist=1; shift ;;
	--status) status=1; shift ;;
	-h | --help) usage 0 ;;
	-*) die "unknown option $1 (see --help)" ;;
	*) [ -z "$count" ] || die "one page count, got $count and $1"; count=$1; shift ;;
	esac
done

case "$size" in
2M | 2m | 2MB | 2048k | 2048kB) size=2M kb=2048 mnt=/dev/hugepages ;;
1G | 1g | 1GB | 1048576k | 1048576kB) size=1G kb=1048576 mnt=/dev/hugepages-1G ;;
*) die "--size $size: want 2M or 1G" ;;
esac
if [ -n "$node" ] && ! [[ "$node" =~ ^[0-9]+$ ]]; then
	die "--node $node: want a NUMA node number"
fi

if [ -n "$node" ]; then
	sysdir=/sys/devices/system/node/node$node/hugepages/hugepages-${kb}kB
else
	sysdir=/sys/kernel/mm/hugepages/hugepages-${kb}kB
fi

show_status() {
	local d n
	for d in /sys/kernel/mm/hugepages/hugepages-*; do
		[ -d "$d" ] || continue
		n=${d##*/hugepages-}
		say "$n: $(cat "$d/nr_hugepages") reserved, $(cat "$d/free_hugepages") free"
	done
	for d in /sys/devices/system/node/node*/hugepages/hugepages-*; do
		[ -d "$d" ] || continue
		n=${d#/sys/devices/system/node/}
		say "  ${n%%/*} ${d##*/hugepages-}: $(cat "$d/nr_hugepages") reserved, $(cat "$d/free_hugepages") free"
	done
	if grep -qs ' hugetlbfs ' /proc/mounts; then
		awk '$3 == "hugetlbfs" {print "hugepages: mounted: " $2 " (" $4 ")"}' /proc/mounts
	else
		say "no hugetlbfs mounted: tapvault will run EAL with --no-huge"
	fi
}

if [ "$status" = 1 ]; then
	show_status
	exit 0
fi
[ -n "$count" ] || usage 2
[[ "$count" =~ ^[0-9]+$ ]] || die "page count $count: want a whole number"
[ "$(id -u)" = 0 ] || die "must run as root to reserve hugepages (try: sudo $0 $*)"
[ -d "$sysdir" ] || die "this kernel has no $size pages ($sysdir missing)${node:+ or no NUMA node $node}"

# Reserve. The kernel may give fewer pages than asked when memory is
# fragmented; say so rather than pretend.
have=$(cat "$sysdir/nr_hugepages")
if [ "$have" -ge "$count" ]; then
	say "$have x $size already reserved${node:+ on node $node} (asked for $count): unchanged"
else
	if ! echo "$count" >"$sysdir/nr_hugepages" 2>/dev/null; then
		die "the kernel refused to reserve $count x $size (read-only /sys: a container?)"
	fi
	have=$(cat "$sysdir/nr_hugepages")
	if [ "$have" -lt "$count" ]; then
		say "warning: asked for $count x $size, the kernel gave $have (memory too fragmented; reserve at boot, see below)" >&2
	else
		say "$have x $size reserved${node:+ on node $node}"
	fi
fi

# Mount. 2 MiB pages use /dev/hugepages (systemd mounts it at boot on most
# distributions); 1 GiB pages get a mount of their own with pagesize=1G.
fsline="nodev $mnt hugetlbfs pagesize=$size,mode=0700 0 0"
if awk -v m="$mnt" '$2 == m && $3 == "hugetlbfs" {f=1} END {exit !f}' /proc/mounts; then
	say "hugetlbfs already mounted at $mnt"
else
	mkdir -p "$mnt"
	if mount -t hugetlbfs -o "pagesize=$size,mode=0700" nodev "$mnt"; then
		say "mounted hugetlbfs at $mnt (pagesize=$size)"
	else
		die "could not mount hugetlbfs at $mnt"
	fi
fi

# Persistence.
sysctl_file=/etc/sysctl.d/80-tapvault-hugepages.conf
default_kb=$(awk '/^Hugepagesize:/ {print $2}' /proc/meminfo)
if [ "$size" = 1G ]; then
	# 1 GiB pages are only reliably available when reserved at boot.
	say "to keep 1 GiB pages across reboots, add to the kernel command line (GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub):"
	say "    default_hugepagesz=1G hugepagesz=1G hugepages=$count"
	say "and this line to /etc/fstab:"
	say "    $fsline"
	if [ "$persist" = 1 ]; then
		if grep -qsE "^[^#]*[[:space:]]$mnt[[:space:]]+hugetlbfs" /etc/fstab; then
			say "/etc/fstab already mounts $mnt"
		else
			printf '%s\n' "$fsline" >>/etc/fstab
			say "added the $mnt line to /etc/fstab; the kernel command line is yours to edit"
		fi
	fi
	exit 0
fi
if [ -n "$node" ] || [ "$default_kb" != "$kb" ]; then
	# vm.nr_hugepages sets the default page size on all nodes only.
	say "to keep these pages across reboots, add to the kernel command line: hugepagesz=$size hugepages=${node:+$node:}$count"
	[ "$persist" = 1 ] && say "--persist writes sysctl.d only for the default page size on all nodes: edit the kernel command line instead"
	exit 0
fi
line="vm.nr_hugepages = $count"
if [ "$persist" = 1 ]; then
	if [ -f "$sysctl_file" ] && grep -qx "$line" "$sysctl_file"; then
		say "$sysctl_file already says: $line"
	else
		printf '# Written by tapvault scripts/hugepages.sh: hugepages for DPDK.\n%s\n' "$line" >"$sysctl_file"
		say "wrote $sysctl_file: $line"
	fi
	# systemd's dev-hugepages.mount mounts /dev/hugepages at boot; an fstab
	# line is only needed where systemd does not.
	if [ -d /run/systemd/system ]; then
		say "systemd mounts /dev/hugepages at boot (dev-hugepages.mount): /etc/fstab unchanged"
	elif grep -qsE "^[^#]*[[:space:]]$mnt[[:space:]]+hugetlbfs" /etc/fstab; then
		say "/etc/fstab already mounts $mnt"
	else
		printf '%s\n' "$fsline" >>/etc/fstab
		say "added to /etc/fstab: $fsline"
	fi
else
	say "to keep them across reboots (or run again with --persist):"
	say "    echo '$line' > $sysctl_file"
	say "    and, where systemd does not mount /dev/hugepages itself, in /etc/fstab: $fsline"
fi
