#!/bin/bash
# build.sh TAG: test binaries of src.TAG into bin.TAG.*
t=$1; cd /tmp/perf2-bench/src.$t || exit 1
(cd benchmarks && GOWORK=off go test -c -o /tmp/perf2-bench/bench.$t . ) &&
(cd ratelimit/sentinel && GOWORK=off go test -c -o /tmp/perf2-bench/sent.$t . ) &&
(cd logging && GOWORK=off go test -c -o /tmp/perf2-bench/log.$t . ) &&
(cd ratelimit && GOWORK=off go test -c -o /tmp/perf2-bench/rl.$t . ) && echo built $t
