#!/bin/bash
# Endpoint capture budget (issue 16 §1): CPU and peak RSS of
# `tapvault capture --iface` against `tcpdump -i IF -w FILE` on the same
# traffic: idle, and tcpreplay at fixed rates of a generated app trace
# (HTTP, DNS, PostgreSQL, Redis) into a veth pair whose peer end is in a
# network namespace.
#
# CPU is utime+stime of the capturing process from /proc/PID/stat over the
# window (all its threads, kernel time on its behalf included), as % of one
# core; peak RSS is VmHWM from /proc/PID/status at the end of the window.
# Every configuration runs REPS times, interleaved, and the medians are
# printed as a Markdown table (docs/PERFORMANCE.md, "Issue 16: endpoint
# capture").
#
# Needs root, iproute2, tcpreplay, tcpdump. Run under the benchmark lock:
#   flock /tmp/bench.lock scripts/bench/endpoint.sh
# Environment: OUT (work dir, default /var/tmp/tv-endpoint), WINDOW (s, 20),
# REPS (3), RATES ("0 1000 10000"), TAPVAULT_ARGS (extra capture flags),
# TV (a tapvault binary to run instead of building one from the tree),
# VARIANTS (tapvault configurations, ';'-separated "name=flags", default
# "tapvault="; "name@BINARY=flags" runs another tapvault binary, e.g. one
# built from an older commit, interleaved with this one).
set -euo pipefail
OUT=${OUT:-/var/tmp/tv-endpoint}
WINDOW=${WINDOW:-20}
REPS=${REPS:-3}
RATES=${RATES:-0 1000 10000}
VARIANTS=${VARIANTS:-tapvault=}
NS=tvep$$
CAP=tvep$$c
PEER=tvep$$p
TCK=$(getconf CLK_TCK)

[ "$(id -u)" = 0 ] || { echo "endpoint.sh: needs root (veth, namespaces, capture)" >&2; exit 1; }
for t in ip tcpreplay tcpdump; do command -v $t >/dev/null || { echo "endpoint.sh: $t not installed" >&2; exit 1; }; done

mkdir -p "$OUT"
cd "$(git rev-parse --show-toplevel)"
if [ -z "${TV:-}" ]; then
	CGO_ENABLED=0 go build -o "$OUT/tapvault" ./cmd/tapvault
	TV="$OUT/tapvault"
fi
# A trace of 60 s at 10k pkt/s; tcpreplay loops it at the rate asked.
[ -s "$OUT/app.pcap" ] || "$TV" bench gen --kind app --packets 600000 --flows 20000 --active 2000 --pps 10000 -o "$OUT/app.pcap" >/dev/null

cleanup() {
	[ -n "${RP:-}" ] && kill "$RP" 2>/dev/null || true
	[ -n "${CP:-}" ] && kill "$CP" 2>/dev/null || true
	ip link del "$CAP" 2>/dev/null || true
	ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$NS"
ip link add "$CAP" type veth peer name "$PEER"
ip link set "$PEER" netns "$NS"
echo 1 > /proc/sys/net/ipv6/conf/$CAP/disable_ipv6
ip netns exec "$NS" sh -c "echo 1 > /proc/sys/net/ipv6/conf/$PEER/disable_ipv6"
ip link set "$CAP" up
ip -n "$NS" link set "$PEER" up

# ticks PID: utime+stime in clock ticks.
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
hwm() { awk '/^VmHWM/{print $2}' "/proc/$1/status"; }

RES="$OUT/results.txt"
: > "$RES"
for rep in $(seq 1 "$REPS"); do
	for rate in $RATES; do
		IFS=';' read -ra vs <<< "tcpdump=;$VARIANTS"
		for v in "${vs[@]}"; do
			name=${v%%=*}; flags=${v#*=}
			bin=$TV
			if [[ $name == *@* ]]; then bin=${name#*@}; name=${name%%@*}; fi
			rm -rf "$OUT/store" "$OUT/tcpdump.pcap"
			if [ "$name" = tcpdump ]; then
				tcpdump -i "$CAP" -w "$OUT/tcpdump.pcap" -n -Z root 2>"$OUT/cap.err" &
			else
				# shellcheck disable=SC2086
				"$bin" capture --iface "$CAP" --data "$OUT/store" --listen "" $flags ${TAPVAULT_ARGS:-} >"$OUT/cap.out" 2>"$OUT/cap.err" &
			fi
			CP=$!
			sleep 3 # start-up (the store, the index) is not the steady state
			RP=
			if [ "$rate" != 0 ]; then
				ip netns exec "$NS" tcpreplay -i "$PEER" --pps="$rate" --loop=0 --preload-pcap -q "$OUT/app.pcap" >/dev/null 2>&1 &
				RP=$!
				sleep 2
			fi
			t0=$(ticks $CP)
			sleep "$WINDOW"
			t1=$(ticks $CP)
			h=$(hwm $CP)
			[ -n "$RP" ] && { kill "$RP"; wait "$RP" 2>/dev/null || true; }
			RP=
			kill -INT $CP; wait $CP || true
			CP=
			drops=-
			if [ "$name" != tcpdump ]; then
				drops=$(grep -o 'imissed [0-9]*' "$OUT/cap.out" | awk '{print $2}' || echo '?')
			else
				drops=$(grep -o '[0-9]* packets dropped by kernel' "$OUT/cap.err" | awk '{print $1}' || echo '?')
			fi
			cpu=$(awk -v a="$t0" -v b="$t1" -v w="$WINDOW" -v t="$TCK" 'BEGIN{printf "%.2f", (b-a)/t/w*100}')
			echo "$name $rate $cpu $h $drops" | tee -a "$RES"
		done
	done
done

python3 - "$RES" <<'PY'
import collections, statistics, sys
d = collections.defaultdict(list)
for l in open(sys.argv[1]):
    name, rate, cpu, hwm, drops = l.split()
    d[(name, int(rate))].append((float(cpu), int(hwm), drops))
print("| capturer | rate (pkt/s) | CPU, % of a core (median) | CPU per 1k pkt/s | peak RSS (MiB, median) | kernel drops |")
print("|---|---:|---:|---:|---:|---|")
for (name, rate) in sorted(d, key=lambda k: (k[1], k[0])):
    xs = d[(name, rate)]
    cpu = statistics.median(x[0] for x in xs)
    rss = statistics.median(x[1] for x in xs) / 1024
    per = f"{cpu / (rate / 1000):.3f}" if rate else "-"
    print(f"| {name} | {rate} | {cpu:.2f} | {per} | {rss:.1f} | {','.join(x[2] for x in xs)} |")
PY
