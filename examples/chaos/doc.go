// Package chaos is gingov's chaos suite (make chaos): fleets of the
// example programs (examples/distributed, and examples/gateway in front of
// examples/orders), each its own OS process, behind real Redis (standalone
// and a 3-master cluster), rnacos, the Eureka server and an OTLP/HTTP
// receiver, driven by an open-loop load generator in its own process
// (./loadgen), while faults are injected on a schedule. Each fault is a
// subtest with a healthy, a during and an after phase; the suite asserts
// what the kit promises and prints one Markdown table, published in
// docs/reliability.md.
//
// The tests carry the chaos build tag, so that make test, which tests
// every module, does not run them: run them with
//
//	make chaos
//
// or, from the examples module, GOWORK=off go test -tags chaos -v ./chaos.
package chaos
