#!/bin/bash
# How results/step-clientip, step-sentinel and step-accesslog were
# measured, in one run (benchmarks/README.md, "Step: ..."). In one
# directory (build.sh TAG builds them from a source tree src.TAG):
# bench.sN, sent.sN, log.sN, rl.sN are `go test -c` of benchmarks/,
# ratelimit/sentinel/, logging/ and ratelimit/ at step N
# (s0 = main before the steps, s1 = ClientIP shared, s2 = Sentinel,
# s3 = access log). First `CAL=1 ROUNDS=2 ./run-cpu.sh` (start-up CPU, into
# cal.txt), then `N=100000 ROUNDS=6 ./run-cpu.sh` (into cpu.txt). Each case
# runs in its own process for a fixed N iterations; versions interleaved
# within each round. Kratos's sides do not change between steps: they run
# once per round (from bench.s3) and every step's ratio is taken against
# them in the same round. More rounds: FIRST=7 APPEND=1 N=100000 ROUNDS=6
# ./run-cpu.sh (rounds 7-12 were added so). python3 analyze.py . prints
# medians and ratios and writes cpu.sN.txt for benchstat. Columns of
# cpu.txt: round, binary, case, user s, sys s, ns/op, B/op, allocs/op.
cd "$(dirname "$0")"
out=${OUT:-cpu.txt}
N=${N:-100000}
if [ -n "$CAL" ]; then N=1; out=cal.txt; fi
[ -n "$APPEND" ] || : > $out
TIMEFORMAT='%U %S'
run() { # round bin case regex
  local t
  t=$( { time ./$2 -test.run x -test.bench "$4" -test.benchmem -test.count 1 -test.benchtime ${N}x > last.out ; } 2>&1 )
  local line=$(grep '^Bench' last.out | head -1)
  echo "$1 $2 $3 $t $(echo $line | awk '{print $3, $5, $7}')" >> $out
}
for i in $(seq ${FIRST:-1} $(( ${FIRST:-1} + ${ROUNDS:-6} - 1 ))); do
  run $i bench.s3 full100kratos 'Kratos/row=full$/sample=100$/mode=serial/side=kratos$'
  run $i bench.s3 full100kratos3 'Kratos/row=full$/sample=100$/mode=serial/side=kratos3$'
  for v in s0 s1 s2 s3; do
    run $i bench.$v bare 'Kratos/row=bare/mode=serial/side=gin'
    run $i bench.$v full100gin 'Kratos/row=full$/sample=100$/mode=serial/side=gin'
    run $i bench.$v full10gin 'Kratos/row=full$/sample=10$/mode=serial/side=gin'
    run $i sent.$v sentinel 'BenchmarkMiddleware/sentinel$'
    run $i log.$v accesslog 'BenchmarkAccessLogJSON$'
    run $i rl.$v ratelimit 'BenchmarkMiddleware/local-per-ip$'
  done
  run $i bench.s3 full10kratos 'Kratos/row=full$/sample=10$/mode=serial/side=kratos$'
  run $i bench.s3 full10kratos3 'Kratos/row=full$/sample=10$/mode=serial/side=kratos3$'
done
echo done
