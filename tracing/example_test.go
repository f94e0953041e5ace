package tracing_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/logging"
	"github.com/gingov/gingov/tracing"
)

// A service traced with the kit's chain: the span is named by the route,
// a 4xx is not an error, and the trace ID reaches the response header.
func ExampleNew() {
	rec := tracetest.NewSpanRecorder() // in production: WithSpanExporter(exp), exp from otlphttp.New
	tp, err := tracing.New(context.Background(), "orders",
		tracing.WithSpanProcessor(rec), tracing.WithSampleRatio(1))
	if err != nil {
		panic(err)
	}
	defer tp.Shutdown(context.Background())
	srv, err := tracing.NewServer("orders", tracing.WithProvider(tp),
		tracing.WithSkipPaths("/healthz"), tracing.WithResponseHeader(tracing.DefaultResponseHeader))
	if err != nil {
		panic(err)
	}

	logger := logging.New(io.Discard, nil)
	requestID, err := logging.NewRequestID()
	if err != nil {
		panic(err)
	}
	accessLog, err := logging.NewAccessLog(logger)
	if err != nil {
		panic(err)
	}
	r := gin.New()
	r.Use(logging.Recovery(logger), requestID.Middleware(), srv.Middleware(), accessLog.Middleware())
	errcode.Handle(r)
	r.GET("/orders/:id", func(c *gin.Context) {
		if c.Param("id") == "0" {
			errcode.Write(c, errcode.NotFound)
			return
		}
		c.String(http.StatusOK, "order")
	})
	r.GET("/healthz", func(c *gin.Context) { c.Status(http.StatusOK) })

	for _, path := range []string{"/orders/7", "/orders/0", "/healthz"} {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		fmt.Println(path, w.Code, "trace header:", len(w.Header().Get("Trace-Id")) == 32)
	}
	for _, s := range rec.Ended() {
		fmt.Printf("span %q status %v\n", s.Name(), s.Status().Code)
	}
	// Output:
	// /orders/7 200 trace header: true
	// /orders/0 404 trace header: true
	// /healthz 200 trace header: false
	// span "GET /orders/:id" status Unset
	// span "GET /orders/:id" status Unset
}

// Service A calls service B through the provider's client: B continues
// A's trace.
func ExampleProvider_Client() {
	tp, err := tracing.New(context.Background(), "a")
	if err != nil {
		panic(err)
	}
	defer tp.Shutdown(context.Background())

	b := gin.New()
	b.Use(tp.Middleware())
	b.GET("/b", func(c *gin.Context) {
		c.String(http.StatusOK, trace.SpanContextFromContext(c.Request.Context()).TraceID().String())
	})
	srvB := httptest.NewServer(b)
	defer srvB.Close()

	client := tp.Client()
	defer client.CloseIdleConnections()
	a := gin.New()
	a.Use(tp.Middleware())
	a.GET("/a", func(c *gin.Context) {
		req, _ := http.NewRequestWithContext(c.Request.Context(), http.MethodGet, srvB.URL+"/b", nil)
		resp, err := client.Do(req)
		if err != nil {
			c.Status(http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		seen, _ := io.ReadAll(resp.Body)
		mine := trace.SpanContextFromContext(c.Request.Context()).TraceID().String()
		c.String(http.StatusOK, fmt.Sprint("same trace in B: ", string(seen) == mine))
	})
	w := httptest.NewRecorder()
	a.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/a", nil))
	fmt.Println(w.Body.String())
	// Output:
	// same trace in B: true
}
