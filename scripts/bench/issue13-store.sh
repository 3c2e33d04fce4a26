#!/bin/bash
# The issue-13 store (docs/PERFORMANCE.md): ten generated app traces of 1.4M
# packets, trace N shifted by (N-1)*20 s, each imported on its own: 14M
# packets, about 1.8M message records. Takes about 5 minutes and 1.7 GB.
#
#   TV=bin/tapvault STORE=/var/tmp/big/store scripts/bench/issue13-store.sh
set -euo pipefail
TV=${TV:-bin/tapvault}
STORE=${STORE:-/var/tmp/big/store}
TV=$(realpath "$TV")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rm -rf "$STORE"
for n in $(seq 10); do
  "$TV" bench gen --kind app --packets 1400000 --seed $n -o "$tmp/t.pcap" >/dev/null
  editcap -F nsecpcap -t $(( (n-1)*20 )) "$tmp/t.pcap" "$tmp/s.pcap"
  "$TV" import --data "$STORE" "$tmp/s.pcap" >/dev/null
  echo "issue13-store: trace $n of 10 imported" >&2
done
