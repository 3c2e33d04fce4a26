#!/bin/bash
# Each slow view's API calls (issue 13) with curl, on a freshly started
# `tapvault serve` per view (nothing kept), the view's calls at once as its
# page makes them: the wall time of each call and the server's CPU
# (utime+stime from /proc). Variants alternate within each round.
#
#   scripts/bench/view-calls.sh "OLD_BIN:OLD_STORE NEW_BIN:NEW_STORE" [ROUNDS]
set -euo pipefail
VARIANTS=$1
ROUNDS=${2:-3}
PORT=${PORT:-18091}
one() { # bin store url...: one fresh server, the urls at once
  local bin=$1 store=$2; shift 2
  "$bin" serve --data "$store" --listen 127.0.0.1:$PORT >/dev/null 2>&1 &
  local p=$!
  until curl -sf -o /dev/null http://127.0.0.1:$PORT/api/v1/stats; do sleep 0.05; done
  local c0 c1 out="" pids=() i=0 tmp
  tmp=$(mktemp -d)
  c0=$(awk '{print $14+$15}' /proc/$p/stat)
  for u in "$@"; do
    curl -s -o /dev/null -w "%{time_total}" "http://127.0.0.1:$PORT/api/v1/$u" >"$tmp/$i" & pids+=($!)
    i=$((i+1))
  done
  wait "${pids[@]}"
  c1=$(awk '{print $14+$15}' /proc/$p/stat)
  kill $p; wait $p 2>/dev/null || true
  for f in $(ls "$tmp" | sort -n); do out="$out $(cat "$tmp/$f")"; done
  rm -rf "$tmp"
  echo "$out cpu=$(( (c1-c0)*10 ))ms"
}
for r in $(seq "$ROUNDS"); do
  for v in $VARIANTS; do
    b=${v%%:*} s=${v#*:}
    echo "$r $v overview $(one "$b" "$s" 'health?cols=120' 'latency_series?by=proto&expr=proto+!=+tcp+and+class+!=+flow&cols=30&total=true')"
    echo "$r $v explorer $(one "$b" "$s" 'latency?by=proto' 'heatmap?cols=120')"
    echo "$r $v exchanges $(one "$b" "$s" 'heatmap?cols=120' 'exchanges?sort=-latency_ns&offset=0&limit=100')"
    echo "$r $v connections $(one "$b" "$s" 'exchanges?expr=proto+tcp&sort=req_first_ns&offset=0&limit=100')"
    echo "$r $v tiers $(one "$b" "$s" 'tiers')"
    echo "$r $v diagnosis $(one "$b" "$s" 'diagnose')"
  done
done
