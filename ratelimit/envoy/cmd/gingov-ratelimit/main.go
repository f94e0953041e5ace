// Command gingov-ratelimit serves gingov's Redis rate limiter to Envoy as a
// rate-limit service (envoy.service.ratelimit.v3), configured by a YAML
// file in the envoyproxy/ratelimit format (see package
// github.com/gingov/gingov/ratelimit/envoy), reloaded when it changes, or
// by the same document in the Nacos config center (-nacos host:port and
// -nacos-data-id), reloaded when it is published again. An invalid new
// version is logged once at ERROR and never replaces the one in force.
//
// It listens for gRPC (-grpc, default 127.0.0.1:8081) and for HTTP
// (-http, default 127.0.0.1:8080) with /healthz (200 "ok", or 503 "redis
// unreachable" while a limiter cannot reach Redis and its failure policy
// answers) and /metrics (Prometheus: gingov_ratelimit_decisions_total, the
// limiters' Redis health series once a limiter reports a change, and the
// Go runtime). Every flag can also be set by the environment variable
// named in its usage. SIGTERM or SIGINT stops it gracefully: in-flight
// calls finish, then the limiters close.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"

	"github.com/gingov/gingov/logging"
	"github.com/gingov/gingov/metrics"
	"github.com/gingov/gingov/ratelimit"
	"github.com/gingov/gingov/ratelimit/envoy"
)

// DefaultDeadline is the limiters' Redis deadline: below Envoy's default
// rate-limit timeout (20 ms), so that the failure policy answers before
// Envoy gives up on the call.
const DefaultDeadline = 15 * time.Millisecond

func main() {
	logger := logging.Default()
	if err := run(context.Background(), os.Args[1:], logger); err != nil {
		logger.Error("gingov-ratelimit: " + err.Error())
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, logger *slog.Logger) error {
	fs := flag.NewFlagSet("gingov-ratelimit", flag.ContinueOnError)
	redisAddr := fs.String("redis", "127.0.0.1:6379", "Redis address (env GINGOV_REDIS_ADDR)")
	configPath := fs.String("config", "ratelimit.yaml", "YAML configuration file, reloaded when it changes (env GINGOV_RATELIMIT_CONFIG)")
	grpcAddr := fs.String("grpc", "127.0.0.1:8081", "gRPC listen address (env GINGOV_GRPC_ADDR)")
	httpAddr := fs.String("http", "127.0.0.1:8080", "HTTP listen address for /healthz and /metrics (env GINGOV_HTTP_ADDR)")
	policy := fs.String("failure-policy", "local", "while Redis is unreachable: local, open or closed (env GINGOV_FAILURE_POLICY)")
	instances := fs.Int("instances", 1, "instances of this service sharing the limits, for the local policy (env GINGOV_INSTANCES)")
	deadline := fs.Duration("deadline", DefaultDeadline, "Redis deadline per decision (env GINGOV_DEADLINE)")
	poll := fs.Duration("poll", envoy.DefaultPollInterval, "how often the configuration file (or Nacos document) is read (env GINGOV_POLL_INTERVAL)")
	nacosAddr := fs.String("nacos", "", "Nacos server HTTP host:port; when set the configuration is the Nacos document -nacos-data-id, not -config (env GINGOV_NACOS_ADDR)")
	nacosDataID := fs.String("nacos-data-id", "gingov-ratelimit.yaml", "Nacos data id of the configuration (env GINGOV_NACOS_DATA_ID)")
	nacosGroup := fs.String("nacos-group", envoy.DefaultNacosGroup, "Nacos group (env GINGOV_NACOS_GROUP)")
	nacosNamespace := fs.String("nacos-namespace", "", "Nacos namespace id (env GINGOV_NACOS_NAMESPACE)")
	nacosUser := fs.String("nacos-username", "", "Nacos user name (env GINGOV_NACOS_USERNAME)")
	nacosPassword := fs.String("nacos-password", "", "Nacos password (env GINGOV_NACOS_PASSWORD; prefer the variable to the flag)")
	for flagName, envName := range map[string]string{
		"redis": "GINGOV_REDIS_ADDR", "config": "GINGOV_RATELIMIT_CONFIG", "grpc": "GINGOV_GRPC_ADDR",
		"http": "GINGOV_HTTP_ADDR", "failure-policy": "GINGOV_FAILURE_POLICY", "instances": "GINGOV_INSTANCES",
		"deadline": "GINGOV_DEADLINE", "poll": "GINGOV_POLL_INTERVAL",
		"nacos": "GINGOV_NACOS_ADDR", "nacos-data-id": "GINGOV_NACOS_DATA_ID", "nacos-group": "GINGOV_NACOS_GROUP",
		"nacos-namespace": "GINGOV_NACOS_NAMESPACE", "nacos-username": "GINGOV_NACOS_USERNAME", "nacos-password": "GINGOV_NACOS_PASSWORD",
	} {
		if v, ok := os.LookupEnv(envName); ok {
			if err := fs.Set(flagName, v); err != nil {
				return fmt.Errorf("%s: %w", envName, err)
			}
		}
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	var fp ratelimit.FailurePolicy
	switch *policy {
	case "local":
		fp = ratelimit.FailLocal(*instances)
	case "open":
		fp = ratelimit.FailOpen
	case "closed":
		fp = ratelimit.FailClosed
	default:
		return fmt.Errorf("-failure-policy: %q is not local, open or closed", *policy)
	}

	// From a file, the configuration is checked before anything starts;
	// from Nacos, the service starts empty and WatchNacos loads the document
	// (or fails) before anything is served.
	cfg := envoy.Config{Domain: "unloaded"}
	if *nacosAddr == "" {
		data, err := os.ReadFile(*configPath)
		if err != nil {
			return err
		}
		if cfg, err = envoy.ParseConfig(data); err != nil {
			return err
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	gov, err := metrics.NewGovernance(reg)
	if err != nil {
		return err
	}
	rdb := redis.NewClient(&redis.Options{Addr: *redisAddr})
	defer rdb.Close()
	svc, err := envoy.New(rdb, cfg, envoy.WithLogger(logger), envoy.WithOnDecision(gov.OnDecision),
		envoy.WithLimiterOptions(ratelimit.WithFailurePolicy(fp), ratelimit.WithDeadline(*deadline),
			// gingov_ratelimit_redis_up and the health series, per limit (the limiter's name).
			ratelimit.WithOnHealthChange(func(ctx context.Context, e ratelimit.Event) { gov.RedisHealthHook(e.Rule)(ctx, e) })))
	if err != nil {
		return err
	}
	defer svc.Close()

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	wctx, cancelWatch := context.WithCancel(ctx)
	defer cancelWatch()
	source := "file:" + *configPath
	var wait func()
	if *nacosAddr != "" {
		src := envoy.NacosSource{Addr: *nacosAddr, DataID: *nacosDataID, Group: *nacosGroup, Namespace: *nacosNamespace,
			Username: *nacosUser, Password: *nacosPassword}
		source = "nacos:" + src.Group + "/" + src.DataID
		wait, err = svc.WatchNacos(wctx, src, envoy.WithPollInterval(*poll))
	} else {
		wait, err = svc.WatchFile(wctx, *configPath, envoy.WithPollInterval(*poll))
	}
	if err != nil {
		return err
	}
	defer wait()

	var lc net.ListenConfig
	glis, err := lc.Listen(ctx, "tcp", *grpcAddr)
	if err != nil {
		return err
	}
	hlis, err := lc.Listen(ctx, "tcp", *httpAddr)
	if err != nil {
		glis.Close()
		return err
	}
	gs := grpc.NewServer()
	svc.Register(gs)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !svc.Healthy() {
			http.Error(w, "redis unreachable", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}

	errc := make(chan error, 2)
	go func() { errc <- gs.Serve(glis) }()
	go func() { errc <- hs.Serve(hlis) }()
	logger.Info("gingov-ratelimit serving", "grpc", glis.Addr().String(), "http", hlis.Addr().String(), "config", source)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	logger.Info("gingov-ratelimit stopping")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = hs.Shutdown(sctx)
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-sctx.Done():
		gs.Stop()
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) && !errors.Is(serveErr, grpc.ErrServerStopped) {
		return serveErr
	}
	return nil
}
