package registry

import "log/slog"

// LoggerOption is the option [WithLogger] returns: it configures
// [NewServer] and [Serve] (a [ServerOption]), [NewHealth] (a
// [HealthOption]) and [NewResolver] (a [ResolverOption]).
type LoggerOption struct{ l *slog.Logger }

func (o LoggerOption) applyServer(c *serverConfig)     { c.logger = o.l }
func (o LoggerOption) applyHealth(c *healthConfig)     { c.logger = o.l }
func (o LoggerOption) applyResolver(c *resolverConfig) { c.logger = o.l }

// WithLogger sets the logger: of the lifecycle for a Server (the
// http.Server's own errors go to it too, at WARN, and its Health logs
// there unless WithHealth gives one), of failing checks for a Health, of
// watch failures for a Resolver. The default, and a nil l, is the kit's
// JSON logger ([logging.Default]), so that these lines match the access
// log.
func WithLogger(l *slog.Logger) LoggerOption { return LoggerOption{l} }

var (
	_ ServerOption   = LoggerOption{}
	_ HealthOption   = LoggerOption{}
	_ ResolverOption = LoggerOption{}
)
