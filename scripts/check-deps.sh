#!/usr/bin/env bash
# Importing a core package must not pull a heavy backend: the dependency
# closure of these packages may contain no Nacos, Sentinel, Aliyun or Kratos
# package (those live in nested modules).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOWORK=off
core=(./errcode ./deadline ./logging ./ratelimit ./circuitbreaker ./metrics ./registry ./tracing/...)
bad=$(go list -deps "${core[@]}" | grep -Ei 'nacos|sentinel|aliyun|kratos' || true)
if [ -n "$bad" ]; then
	echo "check-deps: core packages import heavy backends:"
	echo "$bad"
	exit 1
fi
echo "check-deps: core packages are free of nacos, sentinel, aliyun and kratos"

# Tracing's weight stays in tracing: the packages below may use the
# OpenTelemetry trace API (trace IDs in logs and envelopes) but must not
# link the SDK, the exporters, otelgin, the OTLP protos or gRPC.
light=(./errcode ./deadline ./logging ./ratelimit ./circuitbreaker ./registry ./metrics)
bad=$(go list -deps "${light[@]}" | grep -E '^go\.opentelemetry\.io/(otel/sdk|otel/exporters|contrib|proto)|^google\.golang\.org/grpc' || true)
if [ -n "$bad" ]; then
	echo "check-deps: core packages link the OpenTelemetry SDK, exporters or gRPC:"
	echo "$bad"
	exit 1
fi
echo "check-deps: core packages link no OpenTelemetry SDK, exporter or gRPC"

# tracing itself links the SDK but no exporter and no gRPC: a program picks
# its exporter by importing tracing/otlphttp, tracing/otlpgrpc or
# tracing/stdout.
bad=$(go list -deps ./tracing | grep -E '^go\.opentelemetry\.io/otel/exporters|^google\.golang\.org/grpc' || true)
if [ -n "$bad" ]; then
	echo "check-deps: tracing links an exporter or gRPC:"
	echo "$bad"
	exit 1
fi
echo "check-deps: tracing links no exporter and no gRPC"

# A Gin program exporting spans over OTLP/HTTP (internal/depcheck/otlphttp)
# links neither gRPC nor the OTLP/gRPC exporter.
sample=./internal/depcheck/otlphttp
deps=$(go list -deps "$sample")
if ! grep -qx 'github.com/gingov/gingov/tracing/otlphttp' <<<"$deps"; then
	echo "check-deps: $sample does not use tracing/otlphttp"
	exit 1
fi
bad=$(grep -E '^google\.golang\.org/grpc|otlptracegrpc|^github\.com/grpc-ecosystem' <<<"$deps" || true)
if [ -n "$bad" ]; then
	echo "check-deps: a Gin program exporting over OTLP/HTTP links gRPC:"
	echo "$bad"
	exit 1
fi
echo "check-deps: a Gin program exporting over OTLP/HTTP links no gRPC and no OTLP/gRPC exporter"
