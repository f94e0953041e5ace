package otlphttp_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/gin-gonic/gin"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/gingov/gingov/tracing"
	"github.com/gingov/gingov/tracing/otlphttp"
)

// A service exporting its spans to an OTLP/HTTP collector (here a fake
// one on loopback that prints what it receives).
func ExampleNew() {
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		for _, rs := range req.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					fmt.Println(r.URL.Path, "got span", s.GetName())
				}
			}
		}
	}))
	defer collector.Close()

	ctx := context.Background()
	exp, err := otlphttp.New(ctx, otlphttp.WithEndpoint(collector.Listener.Addr().String()), otlphttp.WithInsecure())
	if err != nil {
		panic(err)
	}
	tp, err := tracing.New(ctx, "orders", tracing.WithSpanExporter(exp))
	if err != nil {
		panic(err)
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(tp.Middleware())
	r.GET("/orders/:id", func(c *gin.Context) { c.String(http.StatusOK, "order") })
	r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/orders/7", nil))

	if err := tp.Shutdown(ctx); err != nil { // flushes the batch
		panic(err)
	}
	// Output:
	// /v1/traces got span GET /orders/:id
}
