#!/usr/bin/env bash
# Query performance on a large store (the figures in docs/PERFORMANCE.md):
# one flow out of a >= 10 GB store, time to first packet and whole flow,
# against tcpdump scanning the same data as pcap; and time-range read-out.
#
#   scripts/bench-query.sh            # DIR=/var/tmp/tapvault-qbench PACKETS=30000000
set -euo pipefail
cd "$(dirname "$0")/.."
TV=${TV:-bin/tapvault}
DIR=${DIR:-/var/tmp/tapvault-qbench}
PACKETS=${PACKETS:-30000000}
FLOWS=${FLOWS:-1000000}
ACTIVE=${ACTIVE:-10000}   # flows active at a time: they come and go, as in real traffic
PORT=${PORT:-18080}
mkdir -p "$DIR"

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", b-a}'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", a/b}'; }

if [ ! -s "$DIR/big.pcap" ]; then
	echo "== generate $PACKETS IMIX packets over $FLOWS flows"
	$TV bench gen --kind imix --packets "$PACKETS" --flows "$FLOWS" --active "$ACTIVE" --seed 9 --pps 1000000 -o "$DIR/big.pcap"
fi
if [ ! -d "$DIR/store/segments" ]; then
	echo "== import"
	$TV import --data "$DIR/store" "$DIR/big.pcap"
fi
$TV stats --data "$DIR/store"
pcap_bytes=$(stat -c %s "$DIR/big.pcap")

# A flow from the middle of the trace: the 200000th packet's TCP 4-tuple.
read -r a b < <(tcpdump -nn -r "$DIR/big.pcap" -c 200000 tcp 2>/dev/null | tail -1 | awk '{print $3, $5}')
b=${b%:}
ha=${a%.*}; pa=${a##*.}; hb=${b%.*}; pb=${b##*.}
filter="host $ha and host $hb and tcp port $pa and port $pb"
echo "== the flow: $filter"

echo "== tapvault query (CLI, whole flow)"
t0=$(now)
$TV query --data "$DIR/store" -w "$DIR/flow-tv.pcap" $filter
t1=$(now)
tv_total=$(secs "$t0" "$t1")

echo "== tapvault serve: time to first byte and whole flow over HTTP"
$TV serve --data "$DIR/store" --listen "127.0.0.1:$PORT" >/dev/null 2>&1 &
srv=$!
trap 'kill $srv 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -s "http://127.0.0.1:$PORT/api/v1/stats" >/dev/null && break; sleep 0.1; done
api() { curl -s -G --data-urlencode "filter=$filter" "$@" "http://127.0.0.1:$PORT/api/v1/packets"; }
api -o /dev/null # warm the index cache once
ttfb=$(api -o "$DIR/flow-api.pcap" -w '%{time_starttransfer} %{time_total}')
kill $srv; trap - EXIT

echo "== tcpdump -r over the same data as pcap"
t0=$(now)
tcpdump -r "$DIR/big.pcap" -w "$DIR/flow-td.pcap" $filter 2>/dev/null
t1=$(now)
td_total=$(secs "$t0" "$t1")

n_tv=$(tcpdump -r "$DIR/flow-tv.pcap" 2>/dev/null | wc -l)
n_td=$(tcpdump -r "$DIR/flow-td.pcap" 2>/dev/null | wc -l)
n_api=$(tcpdump -r "$DIR/flow-api.pcap" 2>/dev/null | wc -l)

echo "== time-range read-out: the middle 10% of the trace to /dev/null"
json=$($TV stats --data "$DIR/store" --json)
first=$(sed -n 's/.*"first_ns": *\([0-9]*\).*/\1/p' <<<"$json")
last=$(sed -n 's/.*"last_ns": *\([0-9]*\).*/\1/p' <<<"$json")
span=$((last - first))
from=$((first + span * 45 / 100)); to=$((first + span * 55 / 100))
TIMEFORMAT='%R %U %S'
# Packet data to /dev/null: the read path itself (reading, checking,
# decompressing, merging, pcap framing), not an output file's fsync. Run
# twice: the first pass may read the segments from disk, the second from the
# page cache.
range_bytes=$($TV query --data "$DIR/store" --from "$from" --to "$to" -w - 2>/dev/null | wc -c)
tr_cold=$( { time $TV query --data "$DIR/store" --from "$from" --to "$to" -w - >/dev/null 2>&1; } 2>&1 )
tr=$( { time $TV query --data "$DIR/store" --from "$from" --to "$to" -w - >/dev/null 2>&1; } 2>&1 )
read -r real user sys <<<"$tr"
echo
echo "store: $pcap_bytes bytes of pcap imported"
echo "flow: tapvault $n_tv packets in ${tv_total}s (CLI, incl. process start and index open); API first byte / total: $ttfb s ($n_api packets)"
echo "flow: tcpdump $n_td packets in ${td_total}s; speed-up $(div "$td_total" "$tv_total")x (CLI)"
cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN{print u+s}')
echo "range: $range_bytes bytes; first pass $tr_cold (real user sys); then ${real}s wall, ${user}s user + ${sys}s sys"
echo "range: $(awk -v b="$range_bytes" -v r="$real" 'BEGIN{printf "%.2f", b/r/1e9}') GB/s wall, $(awk -v b="$range_bytes" -v c="$cpu" 'BEGIN{printf "%.2f", b/c/1e9}') GB/s per CPU-second"
