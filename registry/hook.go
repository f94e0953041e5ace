package registry

import "context"

// OnEventOption is the option [WithOnEvent] returns: it configures
// [NewServer] and [Serve] (a [ServerOption]) and [NewResolver] (a
// [ResolverOption]).
type OnEventOption struct{ fn func(context.Context, Event) }

func (o OnEventOption) applyServer(c *serverConfig) { c.onEvent, c.onEventSet = o.fn, true }
func (o OnEventOption) applyResolver(c *resolverConfig) {
	c.onEvent, c.onEventSet = o.fn, true
}

// WithOnEvent sets a hook for events; fn must not block. Default: none; a
// nil fn is an error.
//
// For a Server: every registration attempt and deregistration it makes
// (Registered, RegisterFailed, Deregistered, DeregisterFailed), with Run's
// context (without its cancellation, at shutdown), on the server's
// goroutines. Backends report their own events (heartbeats) through their
// own WithOnEvent; a backend hook pointed at the same function also sees
// the Register calls, so count registrations from one of the two.
//
// For a Resolver: the empty-set protection of a service starting
// (EmptyHeld) and expiring (EmptyAccepted), see [WithEmptyProtection],
// with the resolver's background context, on its watch goroutine or a
// timer's.
func WithOnEvent(fn func(context.Context, Event)) OnEventOption { return OnEventOption{fn} }

var (
	_ ServerOption   = OnEventOption{}
	_ ResolverOption = OnEventOption{}
)
