package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	commonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/gingov/gingov/internal/testenv"
)

// TestServe runs the command against real Redis: gRPC decisions, /healthz,
// /metrics counting the decisions, and a graceful stop on SIGTERM.
func TestServe(t *testing.T) {
	srv := testenv.StartRedis(t)
	path := filepath.Join(t.TempDir(), "rl.yaml")
	if err := os.WriteFile(path, []byte("domain: edge\ndescriptors:\n  - key: user\n    rate_limit: {unit: minute, requests_per_unit: 2, name: per-user}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	grpcAddr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	httpAddr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	t.Setenv("GINGOV_REDIS_ADDR", srv.Addr)
	done := make(chan error, 1)
	go func() {
		done <- run(context.Background(), []string{"-config", path, "-grpc", grpcAddr, "-http", httpAddr, "-failure-policy", "closed", "-deadline", "5s"},
			slog.New(slog.NewJSONHandler(io.Discard, nil)))
	}()
	get := func(p string) (int, string) {
		resp, err := http.Get("http://" + httpAddr + p)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if code, _ := get("/healthz"); code == 200 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("run ended: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("/healthz never answered 200")
		}
		time.Sleep(20 * time.Millisecond)
	}
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := rlsv3.NewRateLimitServiceClient(conn)
	req := &rlsv3.RateLimitRequest{Domain: "edge", Descriptors: []*commonv3.RateLimitDescriptor{{Entries: []*commonv3.RateLimitDescriptor_Entry{{Key: "user", Value: "u"}}}}}
	var codes []rlsv3.RateLimitResponse_Code
	for range 3 {
		resp, err := c.ShouldRateLimit(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		codes = append(codes, resp.OverallCode)
	}
	if codes[0] != rlsv3.RateLimitResponse_OK || codes[1] != rlsv3.RateLimitResponse_OK || codes[2] != rlsv3.RateLimitResponse_OVER_LIMIT {
		t.Fatalf("codes %v, want OK OK OVER_LIMIT", codes)
	}
	_, m := get("/metrics")
	for _, want := range []string{
		`gingov_ratelimit_decisions_total{result="allowed",rule="per-user",source="redis"} 2`,
		`gingov_ratelimit_decisions_total{result="limited",rule="per-user",source="redis"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, grep(m, "gingov_ratelimit_decisions_total"))
		}
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not stop after SIGTERM")
	}
}

// TestServeNacos: with -nacos the configuration is the Nacos document, and
// a version published later is in force without a restart.
func TestServeNacos(t *testing.T) {
	srv := testenv.StartRedis(t)
	n := testenv.StartNacos(t)
	n.PublishConfig(t, "rl.yaml", "gingov", "domain: edge\ndescriptors:\n  - key: user\n    rate_limit: {unit: minute, requests_per_unit: 1}\n")
	grpcAddr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	httpAddr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	t.Setenv("GINGOV_NACOS_GROUP", "gingov")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-redis", srv.Addr, "-nacos", n.HTTPAddr, "-nacos-data-id", "rl.yaml", "-config", "/nonexistent",
			"-grpc", grpcAddr, "-http", httpAddr, "-deadline", "5s", "-poll", "50ms"}, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	}()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("run did not stop")
		}
	}()
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := rlsv3.NewRateLimitServiceClient(conn)
	code := func(user string) rlsv3.RateLimitResponse_Code {
		t.Helper()
		req := &rlsv3.RateLimitRequest{Domain: "edge", Descriptors: []*commonv3.RateLimitDescriptor{{Entries: []*commonv3.RateLimitDescriptor_Entry{{Key: "user", Value: user}}}}}
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			resp, err := c.ShouldRateLimit(context.Background(), req)
			if err == nil {
				return resp.OverallCode
			}
			if time.Now().After(deadline) {
				t.Fatal(err)
			}
		}
	}
	if a, b := code("u"), code("u"); a != rlsv3.RateLimitResponse_OK || b != rlsv3.RateLimitResponse_OVER_LIMIT {
		t.Fatalf("Nacos's 1/minute: %v %v", a, b)
	}
	n.PublishConfig(t, "rl.yaml", "gingov", "domain: edge\ndescriptors:\n  - key: user\n    rate_limit: {unit: minute, requests_per_unit: 1000}\n")
	// Two in a row admitted for one user: the new 1000/minute is in force.
	twice := func() bool {
		first := code("v")
		return first == rlsv3.RateLimitResponse_OK && code("v") == rlsv3.RateLimitResponse_OK
	}
	for deadline := time.Now().Add(10 * time.Second); !twice(); {
		if time.Now().After(deadline) {
			t.Fatal("the document published again is not in force after 10 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestBadFlags(t *testing.T) {
	discard := slog.New(slog.NewJSONHandler(io.Discard, nil))
	if err := run(context.Background(), []string{"-failure-policy", "maybe"}, discard); err == nil || !strings.Contains(err.Error(), "-failure-policy") {
		t.Fatalf("bad policy: %v", err)
	}
	t.Setenv("GINGOV_DEADLINE", "soon")
	if err := run(context.Background(), nil, discard); err == nil || !strings.Contains(err.Error(), "GINGOV_DEADLINE") {
		t.Fatalf("bad env: %v", err)
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
