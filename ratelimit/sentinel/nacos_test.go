package sentinel_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/logging"
	"github.com/gingov/gingov/ratelimit/sentinel"
)

// Against a real Nacos-protocol server (rnacos): rules published in the
// config center take effect in the running service within seconds; a
// malformed version is rejected and logged, and the previous rules stay.
func TestWatchNacosHotReload(t *testing.T) {
	n := testenv.StartNacos(t)
	const dataID, group = "gingov-sentinel-rules", "DEFAULT_GROUP"
	n.PublishConfig(t, dataID, group, `flow: [{resource: "GET:/nacos/:id", threshold: 1}]`)

	reloads := make(chan error, 10)
	ctx, cancel := context.WithCancel(context.Background())
	start := time.Now()
	wait, err := sentinel.WatchNacos(ctx, sentinel.NacosSource{Addr: n.HTTPAddr, DataID: dataID, Group: group, Dir: t.TempDir()},
		sentinel.WithLogger(logging.New(io.Discard, nil)),
		sentinel.WithOnReload(func(_ context.Context, e sentinel.Event) {
			if e.Kind != sentinel.EventReload || e.Source != "nacos:"+group+"/"+dataID {
				t.Errorf("reload event %+v", e)
			}
			reloads <- e.Err
		}))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	defer func() { cancel(); wait(); _ = sentinel.Load(sentinel.Rules{}) }()
	if err := <-reloads; err != nil {
		t.Fatal(err)
	}
	t.Logf("first rules from Nacos after %v", time.Since(start).Round(time.Millisecond))
	r := newEngine(t)
	r.GET("/nacos/:id", func(c *gin.Context) { c.String(200, "ok") })
	if a, b := get(r, "/nacos/1").Code, get(r, "/nacos/1").Code; a != 200 || b != 429 {
		t.Fatalf("rule from Nacos not in force: %d %d", a, b)
	}

	changed := time.Now()
	n.PublishConfig(t, dataID, group, `flow: [{resource: "GET:/nacos/:id", threshold: 1000}]`)
	select {
	case err := <-reloads:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the change in Nacos did not reach the service within 10 s")
	}
	t.Logf("change in Nacos applied after %v", time.Since(changed).Round(time.Millisecond))
	for i := 0; i < 5; i++ {
		if get(r, "/nacos/1").Code != 200 {
			t.Fatal("the new limit from Nacos is not in force")
		}
	}

	n.PublishConfig(t, dataID, group, `flow: [{resource: "GET:/nacos/:id", threshold: "lots"}]`)
	select {
	case err := <-reloads:
		if err == nil {
			t.Fatal("a malformed rule from Nacos was accepted")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the malformed version was never seen")
	}
	for i := 0; i < 5; i++ {
		if get(r, "/nacos/1").Code != 200 {
			t.Fatal("a rejected version replaced the rules in force")
		}
	}
}

func TestWatchNacosValidates(t *testing.T) {
	ctx := context.Background()
	for _, src := range []sentinel.NacosSource{{Addr: "127.0.0.1:1"}, {Addr: "nohostport", DataID: "x"}} {
		if _, err := sentinel.WatchNacos(ctx, src); err == nil {
			t.Errorf("%+v accepted", src)
		}
	}
}
