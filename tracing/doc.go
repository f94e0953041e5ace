// Package tracing will set up OpenTelemetry tracing for a Gin service:
// TracerProvider, server middleware on otelgin, outbound propagation.
// Until then, the kit reads the active span of a request's context
// (any OpenTelemetry middleware) for trace_id in envelopes and logs.
package tracing
