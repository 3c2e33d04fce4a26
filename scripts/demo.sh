#!/usr/bin/env bash
# The main job on an embedded default (run by `make demo`, after setup and
# build): generate a trace, replay it through DPDK's net_pcap PMD into a fresh
# store, then verify, query and export it back, and say what happened.
set -euo pipefail
cd "$(dirname "$0")/.."
TV=${TV:-bin/tapvault}
OUT=${OUT:-demo-out}
PACKETS=${PACKETS:-200000}

step() { printf '\n== %s\n' "$*"; }

rm -rf "$OUT"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

step "generate a trace: $PACKETS packets, IMIX plus DNS, ICMP, ARP, VLAN/QinQ, fragments"
$TV bench gen --kind mixed --packets "$PACKETS" --flows 2000 --seed 1 -o "$OUT/trace.pcap"

step "replay it through DPDK (net_pcap PMD, worker pinned on lcore 1) into $OUT/store"
$TV capture --eal "-l 0-1 --no-pci --vdev=net_pcap0,rx_pcap=$OUT/trace.pcap" --data "$OUT/store"

step "what the store holds"
$TV stats --data "$OUT/store"

step "verify every block"
$TV verify --data "$OUT/store"

step "query: count everything, then a filtered count"
all=$($TV query --data "$OUT/store" --count)
echo "stored packets: $all"
udp=$($TV query --data "$OUT/store" --count udp port 53)
echo "udp port 53:    $udp"

step "export everything back to pcap (time order, ns timestamps) and read it with tcpdump"
$TV query --data "$OUT/store" -w "$OUT/all.pcap"
tcpdump -nn -r "$OUT/all.pcap" -c 5 2>/dev/null || true
# tcpdump numbers packets with -#; some packets print on several lines.
count() { tcpdump -# -nn -r "$1" 2>/dev/null | grep -cE '^ *[0-9]+  '; }
got=$(count "$OUT/all.pcap")
want=$(count "$OUT/trace.pcap")
echo "tcpdump counts: trace $want, exported $got, tapvault query --count $all"
if [ "$got" != "$want" ] || [ "$all" != "$want" ]; then
	echo "demo: MISMATCH: the store does not hold every packet of the trace" >&2
	exit 1
fi
# net_pcap hands over microsecond timestamps: compare at that precision,
# every byte of every packet.
if ! cmp -s <(tcpdump -nn -tt -xx -r "$OUT/trace.pcap" 2>/dev/null) <(tcpdump -nn -tt -xx -r "$OUT/all.pcap" 2>/dev/null); then
	echo "demo: MISMATCH: exported packets differ from the trace (bytes or timestamps)" >&2
	exit 1
fi
echo "tcpdump -tt -xx of the trace and of the export are identical: every byte and (µs) timestamp came back"

step "analytics: an application trace (HTTP, DNS, PostgreSQL, Redis, a front end with its database) through DPDK"
$TV bench gen --kind app --packets 50000 --pps 5000 --seed 1 -o "$OUT/app.pcap"
$TV capture --eal "-l 0-1 --no-pci --vdev=net_pcap0,rx_pcap=$OUT/app.pcap" --data "$OUT/app-store" | grep -E '^(analytics|tcp|total) '

step "messages: the first exchanges, then HTTP errors"
$TV messages --data "$OUT/app-store" --limit 5
$TV messages --data "$OUT/app-store" --limit 3 'proto http and status >= 400'

step "latency by protocol and class: where the time goes (network vs server)"
$TV latency --data "$OUT/app-store" --by proto,class

step "drill down: a slow-application HTTP exchange, to its packets"
id=$($TV messages --data "$OUT/app-store" --json --limit 1 'proto http and class slow_app' | sed -n 's/^{"id":"\([0-9a-f]*\)".*/\1/p')
if [ -z "$id" ]; then
	echo "demo: no slow_app HTTP exchange found: the analytics did not run" >&2
	exit 1
fi
$TV query --data "$OUT/app-store" --message "$id" -w "$OUT/message.pcap"
tcpdump -nn -r "$OUT/message.pcap" 2>/dev/null

step "tiers: the front end's own time vs its database and cache calls"
$TV latency --data "$OUT/app-store" --tiers --by server 'proto http and server 203.0.113.80:8080'

step "re-analyse the stored packets: the records come out identical"
$TV reanalyze --data "$OUT/app-store" --dry-run

echo
echo "demo: OK: all $want packets replayed through DPDK, stored, verified and read back; the application trace analysed, drilled down and re-analysed (files in $OUT)"

# Last, the web UI on the analysed store: interactive runs keep serving it
# until Ctrl-C; others check that it answers, stop it and say how to start it.
step "the web UI (docs/ui.md): tapvault serve --data $OUT/app-store"
UI_ADDR=${UI_ADDR:-127.0.0.1:8080}
$TV serve --data "$OUT/app-store" --listen "$UI_ADDR" 2>"$OUT/serve.log" &
srv=$!
for _ in $(seq 100); do
	curl -fsS -o /dev/null "http://$UI_ADDR/" 2>/dev/null && break
	kill -0 "$srv" 2>/dev/null || break
	sleep 0.1
done
if ! curl -fsS -o /dev/null "http://$UI_ADDR/"; then
	echo "demo: the UI did not answer at http://$UI_ADDR/ (port taken? set UI_ADDR=127.0.0.1:PORT; log in $OUT/serve.log)" >&2
	kill "$srv" 2>/dev/null || true
	exit 1
fi
if [ -t 0 ] && [ -t 1 ]; then
	echo "the slow exchange above: http://$UI_ADDR/#/exchange?id=$id"
	echo "the web UI is at http://$UI_ADDR/ (Ctrl-C stops it)"
	wait "$srv" || true
else
	kill "$srv"
	wait "$srv" || true
	echo "(it answered and was stopped; start it again with: $TV serve --data $OUT/app-store --listen $UI_ADDR)"
	echo "the web UI: http://$UI_ADDR/"
fi
