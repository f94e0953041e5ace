// Package registry registers a Gin service with a service registry and
// discovers other services through one.
//
// The backends implement two small interfaces: [Registrar] (Register and
// Deregister, both bounded by a context) and [Discovery] (instances of a
// service, and a [Watcher] for changes); with Close and Backend they make
// a [Registry], which every backend's *Registry satisfies. The backends
// live in their own packages (see Backends below).
//
// Backends report what happens to a registration through [Event]s
// (registered — the first time and again after the registry lost the
// instance —, register failed, heartbeat failed, deregistered, deregister
// failed; see [EventKind]), so that metrics and logs can follow a
// registration without a backend importing either. Each backend takes
// them in its WithOnEvent option. [Server] names a registrar in its
// Events, in readiness and in the metric labels by its Backend() string
// ("nacos", "eureka", "etcd", "consul") when it has that method, by its
// Go type otherwise.
//
// # Over the backends
//
//   - [Server] and [Serve]: the life of an instance. Listen, serve,
//     register (retrying with backoff and jitter while serving); on
//     shutdown readiness turns 503, the instance is deregistered (bounded),
//     a drain delay passes, and http.Server.Shutdown lets in-flight
//     requests finish. [SignalContext] ends a context at SIGTERM.
//   - [Health]: /healthz and /readyz, with dependency checks, mountable
//     on a Gin engine or any mux.
//   - [Resolver]: the instances of a service from a watch-fed cache, and
//     [Resolver.Counter], the live instance count (for
//     ratelimit.FailLocalFunc).
//   - [Transport]: an http.RoundTripper for http://<service>/path with
//     [P2C] or [WeightedRoundRobin] balancing, avoidance of instances whose
//     circuit breaker is open, [Canary] routing and retries of idempotent
//     requests.
//   - registry/registrytest: an in-memory registry for tests, and the
//     conformance suite every backend runs against its real server.
//
// # Backends
//
// registry/eureka (in this module, with its own JSON client over
// net/http), and the nested modules registry/nacos, registry/etcd and
// registry/consul, so that importing registry links no SDK.
package registry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// ServiceInstance is one running instance of a service.
type ServiceInstance struct {
	// ID identifies the instance within its service; unique per process.
	// Backends derive a default from Name and Address when it is empty.
	ID string
	// Name is the service name, used as is: no suffix is added, so other
	// frameworks' clients find it under the same name.
	Name string
	// Version is the service's version (e.g. "v1.4.2"); backends store it
	// in the instance metadata under "version".
	Version string
	// Address is host:port where the instance serves HTTP. The host must be
	// an address other instances can reach (not 0.0.0.0 or empty).
	Address string
	// Metadata is free-form labels (zone, canary group, ...). The discovery
	// load balancer can select instances by them.
	Metadata map[string]string
	// Weight is the relative share of traffic for weighted balancing; 0
	// means [DefaultWeight].
	Weight int
}

// DefaultWeight is the weight of an instance whose Weight is 0.
const DefaultWeight = 100

// Validate reports what is wrong with the instance, naming the field.
func (s *ServiceInstance) Validate() error {
	if s == nil {
		return errors.New("registry: nil ServiceInstance")
	}
	if s.Name == "" {
		return errors.New("registry: ServiceInstance.Name is empty")
	}
	host, port, err := net.SplitHostPort(s.Address)
	if err != nil {
		return fmt.Errorf("registry: ServiceInstance.Address %q is not host:port: %w", s.Address, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		return fmt.Errorf("registry: ServiceInstance.Address %q has no reachable host", s.Address)
	}
	if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
		return fmt.Errorf("registry: ServiceInstance.Address %q has an invalid port", s.Address)
	}
	if s.Weight < 0 {
		return fmt.Errorf("registry: ServiceInstance.Weight %d is negative", s.Weight)
	}
	return nil
}

// EffectiveWeight is Weight, or DefaultWeight when Weight is 0.
func (s *ServiceInstance) EffectiveWeight() int {
	if s.Weight == 0 {
		return DefaultWeight
	}
	return s.Weight
}

// InstanceID is the ID of s, or name-host-port when ID is empty.
func (s *ServiceInstance) InstanceID() string {
	if s.ID != "" {
		return s.ID
	}
	host, port, err := net.SplitHostPort(s.Address)
	if err != nil {
		return s.Name + "-" + s.Address
	}
	return s.Name + "-" + host + "-" + port
}

// Registrar registers and deregisters instances. Register returns once the
// registry has accepted the instance; keeping it registered afterwards
// (heartbeats, lease keep-alive, re-registration after the registry lost
// it) is the backend's job until Deregister.
type Registrar interface {
	Register(ctx context.Context, ins *ServiceInstance) error
	Deregister(ctx context.Context, ins *ServiceInstance) error
}

// Discovery finds the instances of a service.
type Discovery interface {
	// GetService returns the healthy instances of the named service.
	GetService(ctx context.Context, name string) ([]*ServiceInstance, error)
	// Watch follows the named service. The watcher's first Next returns
	// the current instances.
	Watch(ctx context.Context, name string) (Watcher, error)
}

// Registry is a backend: it registers and discovers, names itself, and
// holds a connection that Close releases. Backend returns the name used
// in [Event]s, readiness and metric labels ("nacos", "eureka", "etcd",
// "consul").
type Registry interface {
	Registrar
	Discovery
	Backend() string
	Close() error
}

// Watcher follows the instances of one service.
type Watcher interface {
	// Next blocks until the set of instances changes, then returns the
	// whole new set. It returns an error once the watcher is stopped or its
	// context is done.
	Next() ([]*ServiceInstance, error)
	// Stop ends the watch and releases its resources.
	Stop() error
}

// EventKind says what happened to a registration.
type EventKind int

// The kinds of [Event].
const (
	// Registered: the registry accepted the instance (first time or again).
	Registered EventKind = iota + 1
	// RegisterFailed: a registration attempt failed; it will be retried.
	RegisterFailed
	// HeartbeatFailed: a heartbeat or lease keep-alive failed.
	HeartbeatFailed
	// Deregistered: the instance was removed.
	Deregistered
	// DeregisterFailed: removing the instance failed (shutdown goes on).
	DeregisterFailed
	// EmptyHeld: a [Resolver]'s registry answered no instances for a
	// service that had some; the last ones stay in use (see
	// [WithEmptyProtection]). The Event names the Service, no Instance.
	EmptyHeld
	// EmptyAccepted: the registry still answered no instances when the
	// protection expired; the Resolver's service has none now.
	EmptyAccepted
)

func (k EventKind) String() string {
	switch k {
	case Registered:
		return "registered"
	case RegisterFailed:
		return "register_failed"
	case HeartbeatFailed:
		return "heartbeat_failed"
	case Deregistered:
		return "deregistered"
	case DeregisterFailed:
		return "deregister_failed"
	case EmptyHeld:
		return "empty_held"
	case EmptyAccepted:
		return "empty_accepted"
	}
	return "unknown"
}

// Event reports a change in a registration, or in what a [Resolver]
// discovers, for metrics and logs.
type Event struct {
	Backend  string // "nacos", "eureka", "etcd", ...
	Kind     EventKind
	Service  string           // the discovered service, for a Resolver's kinds (EmptyHeld, EmptyAccepted)
	Instance *ServiceInstance // the registration, for the other kinds
	Err      error            // the failure, for the *Failed kinds
	Time     time.Time
}
