package setup_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/setup"
)

// tracing.exporter picks each exporter package: otlp-http posts the spans
// to the collector named by tracing.endpoint; otlp-grpc, stdout and none
// build (nothing is exported when no request was traced).
func TestTracingExporters(t *testing.T) {
	var mu sync.Mutex
	var bodies [][]byte
	col := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			t.Errorf("export to %s as %s", r.URL.Path, r.Header.Get("Content-Type"))
		}
		mu.Lock()
		bodies = append(bodies, b)
		mu.Unlock()
	}))
	defer col.Close()
	addr := strings.TrimPrefix(col.URL, "http://")
	for _, doc := range []string{
		"tracing: {exporter: otlp-http, endpoint: \"" + addr + "\", insecure: true}",
		"tracing: {exporter: otlp-grpc, endpoint: \"127.0.0.1:4317\", insecure: true}",
		"tracing: {exporter: stdout}",
		"tracing: {exporter: none}",
	} {
		cfg := mustParse(t, "service: {name: orders}\n"+doc)
		r := gin.New()
		ch, err := setup.Use(context.Background(), r, cfg, setup.WithLogOutput(io.Discard))
		if err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		r.GET("/ping", func(c *gin.Context) { c.Status(http.StatusOK) })
		if strings.Contains(doc, "otlp-http") {
			get(r, "/ping")
		}
		if err := ch.Close(context.Background()); err != nil {
			t.Fatalf("%s: close: %v", doc, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) != 1 || !bytes.Contains(bodies[0], []byte("GET /ping")) || !bytes.Contains(bodies[0], []byte("orders")) {
		t.Fatalf("collector got %d exports: %q", len(bodies), bodies)
	}
}
