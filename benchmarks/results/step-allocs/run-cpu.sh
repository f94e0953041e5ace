#!/bin/bash
# How results/step-allocs was measured (benchmarks/README.md, "Step:
# allocations and lookups"). In BIN_DIR: bench.base = `go test -c` of
# benchmarks/ at 9f3fa62 with internal/benchping of this step (for
# cpu-ns/op), bench.s4 = the same at this step. run-cpu.sh OUT ROUNDS: per
# round and case, the gin side of base and new and both Kratos sides (from
# new) back to back, serial, a fixed number of iterations, each in its own
# process. python3 analyze.py OUT prints medians and the medians of the
# per-round ratios (analysis.txt). Columns of cpu.txt: round, binary, then
# the benchmark line (ns/op, cpu-ns/op, B/op, allocs/op).
out=$1; rounds=$2; cd "${BIN_DIR:-.}"; : > $out
NEW=${NEW:-bench.s4}
for i in $(seq $rounds); do
  for c in 'row=full$/sample=100$' 'row=full$/sample=10$' 'row=bare$'; do
    case $c in *bare*) n=100000x;; *) n=${N:-30000x};; esac
    m=${MODE:-serial}
    for run in "bench.base gin" "$NEW gin" "$NEW kratos" "$NEW kratos3"; do
      set -- $run
      ./$1 -test.run '^$' -test.bench "Kratos/$c/.*mode=$m.*/side=$2\$" -test.benchmem -test.count 1 -test.benchtime $n 2>&1 | grep '^Benchmark' | sed "s/^/$i $1 /" >> $out
    done
  done
done
echo done >> $out
