// Package tracing sets up OpenTelemetry tracing for a Gin service: [New]
// builds the TracerProvider (service resource, parent-based ratio sampler,
// W3C tracecontext and baggage propagation by default, B3 on request, the
// exporters you pass), [NewServer] traces each request in a server span
// (what otelgin records, built by the kit's own, cheaper path; or otelgin
// itself), and [NewTransport] / [Provider.Client] carry the trace to the
// services a handler calls.
//
// Exporters live in their own packages, so that a program links only the
// one it uses: [github.com/gingov/gingov/tracing/otlphttp] (OTLP over
// HTTP; links no gRPC), [github.com/gingov/gingov/tracing/otlpgrpc] and
// [github.com/gingov/gingov/tracing/stdout]. This package links the SDK
// and none of them.
//
//	exp, err := otlphttp.New(ctx, otlphttp.WithEndpoint("127.0.0.1:4318"), otlphttp.WithInsecure())
//	if err != nil { ... }
//	tp, err := tracing.New(ctx, "orders", tracing.WithSpanExporter(exp), tracing.WithSampleRatio(0.1))
//	if err != nil { ... }
//	defer tp.Shutdown(context.Background()) // flushes queued spans
//	srv, err := tracing.NewServer("", tracing.WithProvider(tp),
//		tracing.WithSkipPaths("/healthz", "/metrics"), tracing.WithResponseHeader(tracing.DefaultResponseHeader))
//	if err != nil { ... }
//
//	r := gin.New()
//	r.Use(
//		logging.Recovery(logger),
//		requestID.Middleware(), // logging.NewRequestID()
//		srv.Middleware(),       // or tp.Middleware(), with no option
//		accessLog.Middleware(), // logging.NewAccessLog(logger)
//	)
//	client := tp.Client() // outbound calls continue the trace
//
// The trace ID of every request, sampled or not, reaches the access log
// line (trace_id, span_id), the errcode envelope (trace_id) and, with
// [WithResponseHeader], a response header.
//
// Options follow the kit's convention: [Option] configures New,
// [ServerOption] NewServer and [TransportOption] NewTransport; the
// options valid for both sides ([WithProvider], [WithOTel]) are
// [CommonOption]s, and a server-only option passed to NewTransport does not
// compile. Every option is checked by its constructor, which returns an
// error naming it.
//
// # Cost
//
// The middleware makes the sampling decision itself before any span work,
// with the provider's own sampler and the trace ID the SDK would have
// drawn, so the decision is the SDK's. A request the sampler drops only
// gets a non-recording span context. A sampled one gets the span otelgin
// would record, with the attributes built once into a pooled buffer, the
// span name and route attribute cached per route, no per-request closure
// or option, one new request context, and no metric attributes for a
// no-op meter. Skipped paths cost nothing.
//
// B3 headers are not read or written by default; select them with
// [WithPropagators] (for instance "tracecontext", "baggage", "b3multi"
// behind an Envoy sidecar with its Zipkin tracer), or compose them with
// [NewPropagator] for [WithOTel]. The propagator is
// go.opentelemetry.io/contrib/propagators/b3 at the version matching the
// OpenTelemetry version go.mod pins; it accepts 64-bit B3 trace IDs and
// left-pads them to 128 bits.
//
// [Transport] also forwards the request ID of the request being served
// (see logging.InjectRequestID) in the header the logging.RequestID
// middleware read it from.
package tracing
