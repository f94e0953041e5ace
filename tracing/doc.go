// Package tracing sets up OpenTelemetry tracing for a Gin service: one
// call to [Setup] builds the TracerProvider (OTLP over gRPC or HTTP,
// stdout, or no exporter; service resource; parent-based ratio sampler;
// W3C tracecontext and baggage propagation), [Provider.Middleware] traces
// each request through otelgin, and [NewTransport] / [Client] carry the
// trace to the services a handler calls.
//
//	tp, err := tracing.Setup(ctx, "orders",
//		tracing.WithExporter(tracing.ExporterOTLPHTTP),
//		tracing.WithEndpoint("127.0.0.1:4318"), tracing.WithInsecure(),
//		tracing.WithSampleRatio(0.1))
//	if err != nil { ... }
//	defer tp.Shutdown(context.Background()) // flushes queued spans
//
//	r := gin.New()
//	r.Use(
//		logging.Recovery(logger),
//		requestID.Middleware(), // logging.NewRequestID()
//		tp.Middleware(tracing.WithSkipPaths("/healthz", "/metrics")),
//		accessLog.Middleware(), // logging.NewAccessLog(logger)
//	)
//	client := tp.Client() // outbound calls continue the trace
//
// The trace ID of every request, sampled or not, reaches the access log
// line (trace_id, span_id), the errcode envelope (trace_id) and, with
// [WithResponseHeader], a response header.
//
// # Cost
//
// The middleware makes the sampling decision itself before otelgin runs,
// with the provider's own sampler and the trace ID the SDK would have
// drawn, so the decision is the SDK's. A request the sampler drops skips
// otelgin (which builds its whole attribute set before sampling) and only
// gets a non-recording span context. Skipped paths cost nothing.
//
// B3 headers are not read or written by default; pass a propagator that
// includes them to [WithPropagator] if callers need it (this module does
// not pin a B3 propagator).
package tracing
