#!/usr/bin/env bash
# Make a fresh Debian 12 machine ready to build, test and run tapvault.
# Idempotent: a second run installs nothing and only reports.
#
#   scripts/setup.sh            packages + hugepages (when root)
#   HUGEPAGES=0 scripts/setup.sh  skip the hugepage reservation
set -euo pipefail

say() { printf 'setup: %s\n' "$*"; }

# Debian packages the build, the tests and the demo need.
#   libdpdk-dev, pkg-config  the DPDK 22.11 headers/libs our cgo layer links
#   gcc, make, git           cgo and the Makefile
#   tcpdump                  filter tests compare against BPF; demo reads output;
#                            a peer in the bench
#   libpcap0.8               net_pcap PMD at run time (pulled by libdpdk-dev too)
#   iproute2, ethtool        the bench's veth pair in a network namespace
#   tcpreplay                feeds the veth path
#   tshark                   dumpcap, the other peer in the bench
#   curl                     scripts/bench-query.sh asks the HTTP API; a client
#                            of the ground-truth harness
#   the ground-truth harness (groundtruth/, docs/validation.md): real servers
#   and clients in network namespaces
#     redis-server redis-tools       redis-server, redis-cli
#     postgresql                     postgres, initdb, psql
#     mariadb-server mariadb-client  mariadbd, mariadb
#     bind9-dnsutils                 dig
#     iptables                       the NAT case's DNAT and MASQUERADE
#     iputils-ping                   checks the namespaces' path
#   chromium                 the web UI's browser tests (cmd/tapvault/ui_e2e_test.go,
#                            docs/ui.md): headless, driven by chromedp from go test
#   clickhouse-server        the fleet's metadata store (docs/fleet.md): the fleet
#                            tests start their own servers on spare ports with
#                            their own data directories; nothing runs as a service
PKGS=(libdpdk-dev pkg-config gcc make git ca-certificates tcpdump libpcap0.8 procps iproute2 ethtool tcpreplay tshark curl
	redis-server redis-tools postgresql mariadb-server mariadb-client bind9-dnsutils iptables iputils-ping chromium
	clickhouse-server)

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		say "missing packages: ${missing[*]}; run as root (or: sudo apt-get install ${missing[*]})" >&2
		exit 1
	fi
	say "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	# Debian starts the ClickHouse service it just installed (ports 8123
	# and 9000, half a GiB of memory). The tests start their own servers;
	# one we installed is not left running for nothing. One that was
	# already installed is the operator's, and left alone.
	if [[ " ${missing[*]} " == *" clickhouse-server "* ]] && command -v systemctl >/dev/null && systemctl is-active -q clickhouse-server 2>/dev/null; then
		systemctl disable -q --now clickhouse-server && say "stopped and disabled the clickhouse-server service it installed (the fleet tests start their own)"
	fi
else
	say "Debian packages present"
fi

if ! pkg-config --exists libdpdk; then
	say "pkg-config cannot find libdpdk after installing libdpdk-dev" >&2
	exit 1
fi
say "DPDK $(pkg-config --modversion libdpdk)"

# Go: these machines carry Go at /usr/local/go; go.mod asks for 1.26.
GO=$(command -v go || true)
[ -z "$GO" ] && [ -x /usr/local/go/bin/go ] && GO=/usr/local/go/bin/go
if [ -z "$GO" ]; then
	say "no Go toolchain found (want Go 1.26 at /usr/local/go or on PATH)" >&2
	exit 1
fi
say "$($GO version)"

# Hugepages. DPDK runs without them (EAL --no-huge, which tapvault adds by
# itself when none are free), but with them mbuf memory is pinned and TLB
# misses drop.
want=${HUGEPAGES:-512}
if [ "$want" = 0 ]; then
	say "hugepages: skipped (HUGEPAGES=0); EAL will run --no-huge"
elif [ "$(id -u)" != 0 ]; then
	say "hugepages: not root, cannot reserve; EAL will run --no-huge"
else
	have=$(awk '/^HugePages_Total/ {print $2}' /proc/meminfo)
	if [ "${have:-0}" -lt "$want" ]; then
		if echo "$want" >/proc/sys/vm/nr_hugepages 2>/dev/null; then :; fi
		have=$(awk '/^HugePages_Total/ {print $2}' /proc/meminfo)
	fi
	if [ "${have:-0}" -gt 0 ]; then
		if ! grep -qs ' /dev/hugepages hugetlbfs ' /proc/mounts; then
			mkdir -p /dev/hugepages
			mount -t hugetlbfs nodev /dev/hugepages 2>/dev/null || true
		fi
		if grep -qs ' hugetlbfs ' /proc/mounts; then
			say "hugepages: ${have} x $(awk '/^Hugepagesize/ {print $2 $3}' /proc/meminfo) reserved, hugetlbfs mounted"
		else
			say "hugepages: reserved ${have} but could not mount hugetlbfs; EAL will run --no-huge"
		fi
	else
		say "hugepages: the kernel refused the reservation (container or no memory); EAL will run --no-huge"
	fi
fi
say "ready"
