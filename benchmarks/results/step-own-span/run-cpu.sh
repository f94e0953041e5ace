#!/bin/bash
# How results/step-own-span was measured. In one directory: bench.old and
# tracing.old are `go test -c` of benchmarks/ and tracing/ at the commit
# before the step, bench.new and tracing.new at the step. First
# `CAL=1 ROUNDS=2 ./run-cpu.sh` (start-up CPU, into cal.txt), then
# `N=100000 ROUNDS=6 ./run-cpu.sh` (into cpu.txt); analyze.py . prints the
# medians and ratios. Columns of cpu.txt: binary, case, user s, sys s,
# ns/op, B/op, allocs/op.
# Interleaved old/new rounds; each case in its own process with a fixed
# iteration count, recording wall ns/op (Go's) and process CPU ns/op.
cd /tmp/span-bench
out=cpu.txt; : > $out
N=${N:-100000}
TIMEFORMAT='%U %S'
run() { # bin case regex
  local t
  t=$( { time ./$1 -test.run x -test.bench "$3" -test.benchmem -test.count 1 -test.benchtime ${N}x > /tmp/span-bench/last.out ; } 2>&1 )
  local line=$(grep '^Bench' /tmp/span-bench/last.out | head -1)
  echo "$1 $2 $t $(echo $line | awk '{print $3, $5, $7}')" >> $out
}
if [ -n "$CAL" ]; then N=1; out=cal.txt; : > $out; fi
for i in $(seq 1 ${ROUNDS:-6}); do
  for v in old new; do
    run bench.$v bare 'Kratos/row=bare/mode=serial/side=gin'
    run bench.$v full100gin 'Kratos/row=full$/sample=100$/mode=serial/side=gin'
    run bench.$v full10gin 'Kratos/row=full$/sample=10$/mode=serial/side=gin'
    run bench.$v full100kratos 'Kratos/row=full$/sample=100$/mode=serial/side=kratos'
    run bench.$v full10kratos 'Kratos/row=full$/sample=10$/mode=serial/side=kratos'
    run tracing.$v tbare 'BenchmarkBareGin'
    run tracing.$v trc100 'BenchmarkTracing$/sample=100%'
    run tracing.$v trc10 'BenchmarkTracing$/sample=10%'
  done
done
echo done
