// Package circuitbreaker will hold gingov's server and client circuit breakers.
package circuitbreaker
