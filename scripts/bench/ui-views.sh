#!/bin/bash
# The web UI's slow views (issue 13), old against new, on one store: each
# view's API calls as its page makes them (web/static/overview.js, tiers.js,
# diagnose.js), the wall time until the last answer and the server's CPU
# time (utime+stime, /proc), three rounds, medians. "cold" is a freshly
# started new server (nothing kept), "warm" the same view again.
#
#   OLD=2b7c212 STORE=/tmp/big/store flock /tmp/bench.lock scripts/bench/ui-views.sh
#
# OLD is the commit to compare with (default 2b7c212, before this work);
# the new server is built from HEAD. Both are built from `git archive`,
# without the uncommitted files of the working tree.
set -e
OLD=${OLD:-2b7c212}
STORE=${STORE:-/tmp/big/store}
OUT=${OUT:-/tmp/uiviews}
PO=${PO:-18091}
PN=${PN:-18092}
cd "$(git rev-parse --show-toplevel)"
mkdir -p $OUT
for v in old:$OLD new:HEAD; do
  n=${v%%:*}
  rm -rf $OUT/src-$n && mkdir -p $OUT/src-$n
  git archive ${v#*:} | tar -x -C $OUT/src-$n
  (cd $OUT/src-$n && CGO_ENABLED=0 go build -o $OUT/tv-$n ./cmd/tapvault)
done
O=http://127.0.0.1:$PO
N=http://127.0.0.1:$PN
start() { # bin port: starts a server, echoes its pid once it answers
  $OUT/$1 serve --data $STORE --listen 127.0.0.1:$2 >$OUT/$1.log 2>&1 &
  local p=$!
  until curl -sf -o /dev/null http://127.0.0.1:$2/api/v1/stats; do sleep 0.05; done
  echo $p
}
OP=$(start tv-old $PO)
NP=$(start tv-new $PN)
trap 'kill $OP $NP 2>/dev/null' EXIT
now() { date +%s.%N; }
cpu() { awk '{print ($14+$15)/100}' /proc/$1/stat; }
get() { curl -sf -o /dev/null "$1" || echo "FAIL $1" >&2; }
EX='expr=proto%20!%3D%20tcp%20and%20class%20!%3D%20flow'
# The overview before: health, then /api/v1/latency beside the series
# (overview.js at OLD); now: health beside the series with its total.
ov_old() { get "$O/api/v1/health?cols=120"; get "$O/api/v1/latency?by=proto" & get "$O/api/v1/latency_series?by=proto&$EX&cols=30"; wait; }
ov_new() { get "$N/api/v1/health?cols=120" & get "$N/api/v1/latency_series?by=proto&$EX&cols=30&total=true"; wait; }
ti_old() { get $O/api/v1/tiers; }
ti_new() { get $N/api/v1/tiers; }
dg_old() { get $O/api/v1/diagnose; }
dg_new() { get $N/api/v1/diagnose; }
m() { # fn pid: "wall/cpu"
  local t0=$(now) c0=$(cpu $2)
  $1
  echo "$(echo "$(now) - $t0" | bc)/$(echo "$(cpu $2) - $c0" | bc)"
}
med() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
declare -A W C
add() { W[$1]+=" ${2%/*}"; C[$1]+=" ${2#*/}"; }
for i in 1 2 3; do
  echo "round $i: load $(cut -d' ' -f1-3 /proc/loadavg)"
  for v in ov ti dg; do add ${v}_o $(m ${v}_old $OP); done
  kill $NP
  while kill -0 $NP 2>/dev/null; do sleep 0.05; done
  NP=$(start tv-new $PN)
  for v in ov ti dg; do add ${v}_c $(m ${v}_new $NP); done
  for v in ov ti dg; do add ${v}_w $(m ${v}_new $NP); done
done
echo "| view | old: wall (CPU) | new, cold | new, warm |"
echo "|---|---|---|---|"
for v in ov ti dg; do
  echo "| $v | $(med ${W[${v}_o]}) s ($(med ${C[${v}_o]}) s) | $(med ${W[${v}_c]}) s ($(med ${C[${v}_c]}) s) | $(med ${W[${v}_w]}) s ($(med ${C[${v}_w]}) s) |"
done
for v in ov ti dg; do
  echo "$v wall: old [${W[${v}_o]} ] cold [${W[${v}_c]} ] warm [${W[${v}_w]} ]"
  echo "$v cpu:  old [${C[${v}_o]} ] cold [${C[${v}_c]} ] warm [${C[${v}_w]} ]"
done
echo "end: load $(cut -d' ' -f1-3 /proc/loadavg)"
