// Command distributed is the quickstart's service made for a fleet: rate
// limits shared by every instance through Redis, spans sent to an
// OpenTelemetry collector over OTLP/HTTP, and self-registration in Nacos
// with a graceful drain. Everything governing it comes from gingov.yaml
// (see setup.Load), with GINGOV_ environment overrides; the flags say
// where it listens and which Nacos it registers with.
//
//	cd examples && go run ./distributed -config distributed/gingov.yaml -nacos 127.0.0.1:8848
//	curl -i localhost:8080/orders/42 -H 'X-User-Id: alice'
//	curl -s localhost:8080/readyz        # registration state; 503 once draining
//	kill -TERM <pid>                     # deregisters, drains, then stops
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/logging"
	"github.com/gingov/gingov/registry"
	"github.com/gingov/gingov/registry/nacos"
	"github.com/gingov/gingov/setup"
)

// ErrOrderNotFound is an application code: service 1, module 001 (orders), error 001.
var ErrOrderNotFound = errcode.MustNew(1001001, http.StatusNotFound, "ORDER_NOT_FOUND",
	"order not found", errcode.WithSolution("check the order id"))

type options struct {
	config    string        // gingov.yaml
	addr      string        // listen address
	advertise string        // host registered for other services ("" = the listen host, or this machine's IP)
	nacos     string        // Nacos HTTP host:port ("" = no registration)
	drain     time.Duration // wait between deregistration and shutdown
}

func main() {
	var o options
	flag.StringVar(&o.config, "config", "distributed/gingov.yaml", "gingov configuration file")
	flag.StringVar(&o.addr, "addr", "127.0.0.1:8080", "listen address")
	flag.StringVar(&o.advertise, "advertise", "", "host other services reach this instance at (default: the listen host)")
	flag.StringVar(&o.nacos, "nacos", "", "Nacos server host:port to register with (empty: no registration)")
	flag.DurationVar(&o.drain, "drain", registry.DefaultDrainDelay, "how long to keep serving after deregistering")
	flag.Parse()
	ctx, stop := registry.SignalContext(context.Background())
	defer stop()
	if err := run(ctx, o, os.Stdout, nil); err != nil {
		fmt.Fprintln(os.Stderr, "distributed:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends. ready, when not nil, receives the server once
// it listens.
func run(ctx context.Context, o options, out io.Writer, ready chan<- *registry.Server) error {
	gin.SetMode(gin.ReleaseMode)
	cfg, err := setup.Load(o.config)
	if err != nil {
		return err
	}
	r := gin.New()
	if err := r.SetTrustedProxies(nil); err != nil {
		return err
	}
	chain, err := setup.Use(ctx, r, cfg, setup.WithLogOutput(out))
	if err != nil {
		return err
	}
	defer func() { _ = chain.Close(context.Background()) }() // flushes spans, closes Redis pools
	r.GET("/ping", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"message": "pong"}) })
	r.GET("/orders/:id", errcode.Handler(func(c *gin.Context) error {
		logging.FromContext(c.Request.Context()).Info("looking up order", "id", c.Param("id"))
		if c.Param("id") == "42" {
			c.JSON(http.StatusOK, gin.H{"id": "42", "item": "towel"})
			return nil
		}
		return ErrOrderNotFound.WithMetadata("order_id", c.Param("id"))
	}))

	var reg registry.Registrar
	sopts := []registry.ServerOption{
		registry.WithLogger(chain.Logger),
		registry.WithDrainDelay(o.drain),
	}
	if o.advertise != "" {
		sopts = append(sopts, registry.WithAdvertiseHost(o.advertise))
	}
	if gov := chain.Governance(); gov != nil {
		sopts = append(sopts, registry.WithOnEvent(gov.OnRegistryEvent))
	}
	if o.nacos != "" {
		nr, err := nacos.New([]string{o.nacos}, nacos.WithLogger(chain.Logger))
		if err != nil {
			return err
		}
		defer func() { _ = nr.Close() }()
		reg = nr
	}
	srv, err := registry.NewServer(r, o.addr, reg, registry.ServiceInstance{
		Name: cfg.Service.Name, Version: cfg.Service.Version,
	}, sopts...)
	if err != nil {
		return err
	}
	if err := srv.Listen(); err != nil {
		return err
	}
	if ready != nil {
		ready <- srv
	}
	if err := srv.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
