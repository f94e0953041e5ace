// Package interop holds tests, and nothing else, that run gingov against
// another framework's own client code: a Kratos v2.9.2 HTTP client, with
// Kratos's Consul and Nacos discovery, finding and calling a gingov
// service registered by registry/consul and registry/nacos in a real
// Consul and a real rnacos; and a gingov client finding a Kratos service
// registered by Kratos's own registrars.
//
// It is a module of its own, never released (see versions), so that Kratos
// and its registry contribs stay out of every module a user imports.
package interop
