// Command otlphttp is the sample program of scripts/check-deps.sh: a Gin
// service traced with tracing and exporting over OTLP/HTTP only. The
// script checks that it links neither gRPC nor the OTLP/gRPC exporter; it
// is built, never run, by the tests.
package main

import (
	"context"
	"log"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/tracing"
	"github.com/gingov/gingov/tracing/otlphttp"
)

func main() {
	ctx := context.Background()
	exp, err := otlphttp.New(ctx, otlphttp.WithEndpoint("127.0.0.1:4318"), otlphttp.WithInsecure())
	if err != nil {
		log.Fatal(err)
	}
	tp, err := tracing.New(ctx, "depcheck", tracing.WithSpanExporter(exp))
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = tp.Shutdown(context.Background()) }()
	r := gin.New()
	r.Use(tp.Middleware())
	r.GET("/ping", func(c *gin.Context) { c.String(http.StatusOK, "pong") })
	log.Fatal(r.Run("127.0.0.1:8080"))
}
