package envoy_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	commonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"

	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/ratelimit/envoy"
)

// Against a real Nacos-protocol server (rnacos): a configuration published
// in the config center takes effect; each distinct invalid version is
// rejected, logged once at ERROR however often it is read, and never
// replaces the configuration in force; a valid one then does.
func TestWatchNacos(t *testing.T) {
	n := testenv.StartNacos(t)
	_, rdb := startRedis(t)
	const dataID, group = "gingov-ratelimit", "DEFAULT_GROUP"
	n.PublishConfig(t, dataID, group, "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: hour, requests_per_unit: 1}")

	var logs bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(lockedWriter{&mu, &logs}, nil))
	c, svc := serve(t, rdb, "domain: d", envoy.WithLogger(logger))
	reloads := make(chan error, 10)
	ctx, cancel := context.WithCancel(context.Background())
	wait, err := svc.WatchNacos(ctx, envoy.NacosSource{Addr: n.HTTPAddr, DataID: dataID, Group: group, Dir: t.TempDir()},
		envoy.WithPollInterval(20*time.Millisecond), envoy.WithOnReload(func(err error) { reloads <- err }))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	defer func() { cancel(); wait() }()
	code := func(key string) rlsv3.RateLimitResponse_Code {
		return call(t, c, &rlsv3.RateLimitRequest{Domain: "d", Descriptors: []*commonv3.RateLimitDescriptor{desc("k", key)}}).OverallCode
	}
	if code("a") != ok || code("a") != over {
		t.Fatal("Nacos's 1/hour is not in force")
	}
	next := func(what string) error {
		t.Helper()
		select {
		case err := <-reloads:
			return err
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no reload within 10 s", what)
			return nil
		}
	}
	bad1 := "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: fortnight, requests_per_unit: 1}"
	bad2 := "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: hour, requests_per_unit: -1}"
	n.PublishConfig(t, dataID, group, bad1)
	if err := next("bad document 1"); err == nil || !strings.Contains(err.Error(), "descriptors[0].rate_limit.unit") {
		t.Fatalf("bad document 1: %v", err)
	}
	n.PublishConfig(t, dataID, group, bad2)
	if err := next("bad document 2"); err == nil || !strings.Contains(err.Error(), "descriptors[0].rate_limit.requests_per_unit") {
		t.Fatalf("bad document 2: %v", err)
	}
	n.PublishConfig(t, dataID, group, bad1) // seen before: not tried, not logged again
	time.Sleep(300 * time.Millisecond)      // pushes and ~15 polls of it
	if code("a") != over || code("b") != ok {
		t.Fatal("the working configuration did not stay in force")
	}
	mu.Lock()
	n1 := strings.Count(logs.String(), `"level":"ERROR"`)
	mu.Unlock()
	if n1 != 2 {
		t.Fatalf("%d ERROR lines for two distinct bad documents, want 2:\n%s", n1, logs.String())
	}
	n.PublishConfig(t, dataID, group, "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: hour, requests_per_unit: 3}")
	if err := next("good document"); err != nil {
		t.Fatal(err)
	}
	for i, want := range []rlsv3.RateLimitResponse_Code{ok, ok, ok, over} {
		if got := code("c"); got != want {
			t.Fatalf("request %d under the new 3/hour: %v, want %v", i+1, got, want)
		}
	}
	if len(reloads) != 0 {
		t.Fatalf("unexpected reloads: %v", <-reloads)
	}
}

func TestWatchNacosErrors(t *testing.T) {
	_, rdb := startRedis(t)
	_, svc := serve(t, rdb, "domain: d")
	ctx := context.Background()
	for _, tc := range []struct {
		src  envoy.NacosSource
		opts []envoy.WatchOption
		want string
	}{
		{envoy.NacosSource{Addr: "127.0.0.1:8848"}, nil, "envoy: NacosSource.DataID: empty"},
		{envoy.NacosSource{Addr: "nacos", DataID: "x"}, nil, "envoy: NacosSource.Addr: "},
		{envoy.NacosSource{Addr: "127.0.0.1:8848", DataID: "x"}, []envoy.WatchOption{nil}, "envoy: option 1 is nil"},
		{envoy.NacosSource{Addr: "127.0.0.1:8848", DataID: "x"}, []envoy.WatchOption{envoy.WithPollInterval(0)}, "envoy: WithPollInterval: must be > 0"},
	} {
		if _, err := svc.WatchNacos(ctx, tc.src, tc.opts...); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("WatchNacos(%+v): %v, want %q", tc.src, err, tc.want)
		}
	}
	// A missing document, and an invalid one, fail the start.
	n := testenv.StartNacos(t)
	src := envoy.NacosSource{Addr: n.HTTPAddr, DataID: "missing", Dir: t.TempDir(), Timeout: 5 * time.Second}
	if _, err := svc.WatchNacos(ctx, src); err == nil || !strings.Contains(err.Error(), "no such document") {
		t.Errorf("missing document: %v", err)
	}
	n.PublishConfig(t, "bad", envoy.DefaultNacosGroup, "domain: \"\"")
	src.DataID = "bad"
	if _, err := svc.WatchNacos(ctx, src); err == nil || !strings.Contains(err.Error(), "envoy: domain: empty") {
		t.Errorf("invalid document: %v", err)
	}
}
