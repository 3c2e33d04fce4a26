#!/bin/bash
# Decoder and worker benchmarks, before issue 11 (c3212c3^) against HEAD, interleaved, in one run.
set -e
mkdir -p ${OUT:-/tmp/decbench}
cd "$(git rev-parse --show-toplevel)"
B=$(git rev-parse c3212c3^)
rm -rf ${OUT:-/tmp/decbench}/old; git worktree add -f ${OUT:-/tmp/decbench}/old $B >/dev/null 2>&1 || true
(cd ${OUT:-/tmp/decbench}/old && go test -c -o ${OUT:-/tmp/decbench}/analytics.old ./analytics && go test -c -o ${OUT:-/tmp/decbench}/workers.old ./workers)
go test -c -o ${OUT:-/tmp/decbench}/analytics.new ./analytics
go test -c -o ${OUT:-/tmp/decbench}/workers.new ./workers
: > ${OUT:-/tmp/decbench}/out.txt
for i in 1 2 3 4 5; do
  for v in old new; do
    ${OUT:-/tmp/decbench}/analytics.$v -test.run '^$' -test.bench 'Parser$|WorkerApp$|WorkerIMIX$' -test.benchmem -test.benchtime 1s | sed "s/^/$v /" | grep Benchmark >> ${OUT:-/tmp/decbench}/out.txt
    ${OUT:-/tmp/decbench}/workers.$v -test.run '^$' -test.bench '^BenchmarkWorker$' -test.benchmem -test.benchtime 1s | sed "s/^/$v /" | grep Benchmark >> ${OUT:-/tmp/decbench}/out.txt
  done
done
python3 - <<'PY'
import collections,statistics,re
d=collections.defaultdict(list)
for l in open('${OUT:-/tmp/decbench}/out.txt'):
    f=l.split()
    v,name=f[0],re.sub(r'-\d+$','',f[1])
    ns=float(f[f.index('ns/op')-1]); 
    al=f[f.index('allocs/op')-1] if 'allocs/op' in f else '-'
    extra={f[i+1]:f[i] for i in range(3,len(f)-1) if f[i+1].endswith(('/pkt','MB/s'))}
    d[(name,v)].append((ns,al,extra))
names=sorted({k[0] for k in d})
print("| benchmark | before issue 11 ns/op (median) | now | allocs/op before → now |")
print("|---|---:|---:|---|")
for n in names:
    o=d.get((n,'old'),[]); w=d.get((n,'new'),[])
    mo=statistics.median([x[0] for x in o]) if o else float('nan'); mw=statistics.median([x[0] for x in w]) if w else float('nan')
    print(f"| {n} | {mo:.0f} | {mw:.0f} | {o[0][1] if o else '-'} → {w[0][1] if w else '-'} |")
PY
