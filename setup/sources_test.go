package setup_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hashicorp/consul/api"
	dto "github.com/prometheus/client_model/go"

	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/ratelimit/sentinel"
	"github.com/gingov/gingov/setup"
)

// limitDoc is a configuration document with one rate-limit rule.
func limitDoc(limit int, extra string) string {
	return "service: {name: orders}\n" + extra + "ratelimit:\n  rules:\n    - {by: ip, limit: " + strconv.Itoa(limit) + ", period: 1m}\n"
}

// badDoc fails validation (a limit of 0); n makes distinct bad documents.
func badDoc(n int) string {
	return "service: {name: orders}\n# bad " + strconv.Itoa(n) + "\nratelimit:\n  rules:\n    - {by: ip, limit: 0, period: 1m}\n"
}

func limitInForce(ch *setup.Chain) int {
	rules := ch.Config().RateLimit.Rules
	if len(rules) == 0 {
		return 0
	}
	return rules[0].Limit
}

// waitLimit waits until the rule in force has limit, and returns how long
// it took.
func waitLimit(t *testing.T, ch *setup.Chain, limit int) time.Duration {
	t.Helper()
	start := time.Now()
	for limitInForce(ch) != limit {
		if time.Since(start) > 15*time.Second {
			t.Fatalf("limit %d not in force within 15 s (in force: %d)", limit, limitInForce(ch))
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

// reloads returns gingov_config_reloads_total{source, result}.
func reloadCount(t *testing.T, ch *setup.Chain, source, result string) float64 {
	t.Helper()
	fams, err := ch.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "gingov_config_reloads_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			if label(m, "source") == source && label(m, "result") == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// sourceCase drives one config-centre source through the same scenario.
type sourceCase struct {
	name   string // the metric's source label
	source string // the Event's source
	write  func(t *testing.T, doc string)
	stop   func(t *testing.T) // kills the server
	start  func(t *testing.T) // starts it again on the same address
	// lostOnRestart: the server comes back without the document (Consul
	// -dev keeps its state in memory).
	lostOnRestart bool
}

// checkSource runs the shared scenario on a chain reloading from c:
// changes apply (reload latency logged over several samples); an invalid
// document changes nothing and is logged at ERROR once however long it
// stays, a second distinct one once more, the next good one at INFO; the
// metric counts each; the server killed keeps the rules in force (one
// WARN), and once it is back new changes apply.
func checkSource(t *testing.T, c sourceCase, ch *setup.Chain, logs *testenv.Buffer, events <-chan setup.Event) {
	t.Helper()
	r := ch // for readability below
	var lat []time.Duration
	for i := range 7 {
		limit := 100 + i
		start := time.Now()
		c.write(t, limitDoc(limit, ""))
		waitLimit(t, r, limit)
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	t.Logf("%s reload latency (write → rules in force), 7 samples: min %v, median %v, max %v (all: %v)",
		c.name, lat[0].Round(time.Microsecond), lat[3].Round(time.Microsecond), lat[6].Round(time.Microsecond), lat)

	errorLines := func() int {
		return strings.Count(testenv.LogLines(logs.String(), `"source":"`+c.source+`"`), `"level":"ERROR"`)
	}
	c.write(t, badDoc(1))
	waitEvent(t, events, c.source, true)
	// The metric is counted before the hook runs: settled now.
	accepted := reloadCount(t, ch, c.name, "accepted")
	time.Sleep(time.Second) // many reload intervals and re-reads
	if n := errorLines(); n != 1 {
		t.Fatalf("%d ERROR lines for one bad document in place for 1 s, want 1:\n%s", n, logs)
	}
	if got := limitInForce(ch); got != 106 {
		t.Fatalf("a rejected document replaced the rules: limit %d", got)
	}
	c.write(t, badDoc(2))
	waitEvent(t, events, c.source, true)
	time.Sleep(500 * time.Millisecond)
	if n := errorLines(); n != 2 {
		t.Fatalf("%d ERROR lines for two distinct bad documents, want 2", n)
	}
	if got := reloadCount(t, ch, c.name, "rejected"); got != 2 {
		t.Fatalf("rejected reloads metric %v, want 2", got)
	}
	c.write(t, limitDoc(7, ""))
	waitLimit(t, ch, 7)
	// The metric counts after the rules are in force: give it a moment.
	for start := time.Now(); reloadCount(t, ch, c.name, "accepted") != accepted+1; time.Sleep(time.Millisecond) {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("accepted reloads metric %v, want %v", reloadCount(t, ch, c.name, "accepted"), accepted+1)
		}
	}
	// Logged once the reload returned: give it a moment.
	for start := time.Now(); !strings.Contains(testenv.LogLines(logs.String(), `"after_rejected":true`), `"source":"`+c.source+`"`); time.Sleep(time.Millisecond) {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("the acceptance after the rejections was not logged:\n%s", logs)
		}
	}

	// The server dies: the rules in force stay, one WARN however long.
	c.stop(t)
	time.Sleep(2 * time.Second)
	warns := strings.Count(testenv.LogLines(logs.String(), `"source":"`+c.source+`"`), "document source unreachable")
	if warns != 1 {
		t.Fatalf("%d unreachable WARN lines for one outage, want 1:\n%s", warns, logs)
	}
	if got := limitInForce(ch); got != 7 {
		t.Fatalf("rules changed while the source was down: limit %d", got)
	}
	c.start(t)
	for start := time.Now(); !strings.Contains(logs.String(), "document source reachable again"); time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatal("the source's return was not logged")
		}
	}
	if c.lostOnRestart {
		// The rules stay until a new document comes.
		time.Sleep(500 * time.Millisecond)
		if got := limitInForce(ch); got != 7 {
			t.Fatalf("a server that came back empty changed the rules: limit %d", got)
		}
	}
	c.write(t, limitDoc(9, ""))
	d := waitLimit(t, ch, 9)
	t.Logf("%s: a change after the restart applied in %v", c.name, d.Round(time.Millisecond))
}

func waitEvent(t *testing.T, events <-chan setup.Event, source string, wantErr bool) {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case e := <-events:
			if e.Source != source || (e.Err != nil) != wantErr {
				continue
			}
			return
		case <-deadline:
			t.Fatalf("no reload event from %s (error: %v) within 15 s", source, wantErr)
		}
	}
}

// useProfile loads the file holding doc under the profile and puts the
// chain on an engine.
func useProfile(t *testing.T, doc, profile string) (*setup.Chain, *testenv.Buffer, <-chan setup.Event) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gingov.yaml")
	writeFile(t, path, doc)
	cfg, err := setup.LoadProfile(path, profile)
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan setup.Event, 256)
	_, ch, logs := use(t, cfg, setup.WithOnReload(func(_ context.Context, e setup.Event) {
		select {
		case events <- e:
		default:
		}
	}))
	return ch, logs, events
}

func TestReloadFromEtcd(t *testing.T) {
	e := testenv.StartEtcd(t)
	const key = "/gingov/prod/gingov.yaml"
	// The centre's document is over the file (limit 3, not 1) and under
	// the environment (log.level stays debug: no restart needed).
	e.Put(t, key, limitDoc(3, "log: {level: error}\n"))
	t.Setenv("GINGOV_LOG_LEVEL", "debug")
	ch, logs, events := useProfile(t, limitDoc(1, fmt.Sprintf(
		"reload:\n  interval: 50ms\n  etcd: {endpoints: [%q], key: \"/gingov/{profile}/gingov.yaml\", timeout: 500ms}\n", e.Endpoint)), "prod")
	if got := limitInForce(ch); got != 3 {
		t.Fatalf("the etcd document is not in force at start: limit %d, want 3 (file 1)", got)
	}
	if strings.Contains(logs.String(), `"sections":"log"`) || ch.Config().Log.Level != "debug" {
		t.Fatalf("the etcd document won over GINGOV_LOG_LEVEL:\n%s", logs)
	}
	checkSource(t, sourceCase{
		name: "etcd", source: "etcd:" + key,
		write: func(t *testing.T, doc string) { e.Put(t, key, doc) },
		stop:  func(*testing.T) { e.Stop() },
		start: func(t *testing.T) { e.Restart(t) },
	}, ch, logs, events)
}

func TestReloadFromConsul(t *testing.T) {
	c := testenv.StartConsul(t)
	conf := api.DefaultNonPooledConfig()
	conf.Address = c.Addr
	client, err := api.NewClient(conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conf.Transport.CloseIdleConnections)
	const key = "gingov/prod/gingov.yaml"
	put := func(t *testing.T, doc string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := client.KV().Put(&api.KVPair{Key: key, Value: []byte(doc)}, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
			t.Fatal(err)
		}
	}
	put(t, limitDoc(3, ""))
	ch, logs, events := useProfile(t, limitDoc(1, fmt.Sprintf(
		"reload:\n  consul: {addr: %q, key: \"gingov/{profile}/gingov.yaml\", timeout: 500ms, wait: 2s}\n", c.Addr)), "prod")
	if got := limitInForce(ch); got != 3 {
		t.Fatalf("the Consul document is not in force at start: limit %d, want 3 (file 1)", got)
	}
	checkSource(t, sourceCase{
		name: "consul", source: "consul:" + key,
		write:         put,
		stop:          func(*testing.T) { c.Stop() },
		start:         func(t *testing.T) { c.Restart(t) },
		lostOnRestart: true,
	}, ch, logs, events)
	if !strings.Contains(logs.String(), "document missing; what is in force stays") {
		t.Error("the document lost with the agent's state was not logged")
	}
}

// A source down at start is an error naming it, and nothing is put on the
// engine.
func TestSourceDownAtStart(t *testing.T) {
	dead := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		_ = l.Close()
		return addr
	}
	for field, reload := range map[string]string{
		"reload.etcd":   fmt.Sprintf("etcd: {endpoints: [%q], key: /gingov/doc, timeout: 300ms}", "http://"+dead()),
		"reload.consul": fmt.Sprintf("consul: {addr: %q, key: gingov/doc, timeout: 300ms}", dead()),
		"reload.nacos":  fmt.Sprintf("nacos: {addr: %q, data_id: gingov.yaml, timeout: 500ms}", dead()),
	} {
		t.Run(field, func(t *testing.T) {
			cfg := mustParse(t, limitDoc(1, "reload:\n  "+reload+"\n"))
			start := time.Now()
			_, err := setup.Use(context.Background(), gin.New(), cfg, setup.WithLogOutput(&testenv.Buffer{}))
			if err == nil || !strings.HasPrefix(err.Error(), "setup: "+field+": ") {
				t.Fatalf("error %v, want one naming %s", err, field)
			}
			t.Logf("%s down: %v after %v", field, err, time.Since(start).Round(time.Millisecond))
		})
	}
}

// The profile picks the Nacos namespace when reload.nacos has none: the
// document of namespace "prod" is the one in force, not the public one.
func TestReloadFromNacosProfileNamespace(t *testing.T) {
	n := testenv.StartNacos(t)
	const dataID = "gingov.yaml"
	n.PublishConfig(t, dataID, "", limitDoc(50, ""))
	n.PublishConfigIn(t, "prod", dataID, "", limitDoc(5, ""))
	ch, logs, events := useProfile(t, limitDoc(1, fmt.Sprintf(
		"reload:\n  interval: 100ms\n  nacos: {addr: %q, data_id: %s}\n", n.HTTPAddr, dataID)), "prod")
	if got := limitInForce(ch); got != 5 {
		t.Fatalf("limit %d in force, want 5 from the prod namespace (public: 50, file: 1)", got)
	}
	const source = "nacos:DEFAULT_GROUP/" + dataID
	var lat []time.Duration
	for i := range 7 {
		start := time.Now()
		n.PublishConfigIn(t, "prod", dataID, "", limitDoc(200+i, ""))
		waitLimit(t, ch, 200+i)
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	t.Logf("nacos reload latency (write → rules in force), 7 samples: min %v, median %v, max %v (all: %v)",
		lat[0].Round(time.Microsecond), lat[3].Round(time.Microsecond), lat[6].Round(time.Microsecond), lat)
	n.PublishConfig(t, dataID, "", limitDoc(51, "")) // another namespace: no effect
	n.PublishConfigIn(t, "prod", dataID, "", badDoc(1))
	waitEvent(t, events, source, true)
	time.Sleep(time.Second)
	if got := strings.Count(testenv.LogLines(logs.String(), "document rejected"), `"level":"ERROR"`); got != 1 {
		t.Fatalf("%d ERROR lines for one bad Nacos document, want 1", got)
	}
	if got := limitInForce(ch); got != 206 {
		t.Fatalf("limit %d after a bad document and a change in another namespace, want 206", got)
	}
	if got := reloadCount(t, ch, "nacos", "rejected"); got != 1 {
		t.Fatalf("rejected reloads metric %v, want 1", got)
	}
	// The Nacos server going down under the watcher is tested in
	// ratelimit/sentinel (TestWatchNacosOutageAndBadDocument), in a child
	// process built without -race: the SDK races with itself when it
	// reconnects.
}

// Reload latency of the file source (polled every reload.interval).
func TestReloadFromFileLatency(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gingov.yaml")
	doc := func(limit int) string { return limitDoc(limit, "reload: {file: true, interval: 100ms}\n") }
	writeFile(t, path, doc(1))
	cfg, err := setup.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	_, ch, _ := use(t, cfg)
	var lat []time.Duration
	for i := range 7 {
		start := time.Now()
		writeFile(t, path, doc(300+i))
		waitLimit(t, ch, 300+i)
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	t.Logf("file reload latency (write → rules in force, interval 100ms), 7 samples: min %v, median %v, max %v",
		lat[0].Round(time.Microsecond), lat[3].Round(time.Microsecond), lat[6].Round(time.Microsecond))
	_ = os.Remove(path + ".tmp")
}

// The Sentinel rule document of sentinel.rules_file counts in the reload
// metric too, a bad version once however long it stays.
func TestSentinelRulesFileCounts(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, rules, `flow: [{resource: "GET:/counted/:id", threshold: 100}]`)
	cfg := mustParse(t, "service: {name: orders}\nreload: {interval: 20ms}\nsentinel: {enabled: true, rules_file: "+strconv.Quote(rules)+"}\n")
	t.Cleanup(func() { _ = sentinel.Load(sentinel.Rules{}) }) // after the chain's Close
	_, ch, logs := use(t, cfg)
	writeFile(t, rules, `flow: [{resource: "GET:/counted/:id", threshold: -1}]`)
	for start := time.Now(); reloadCount(t, ch, "file", "rejected") != 1; time.Sleep(5 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("rejected metric %v, want 1", reloadCount(t, ch, "file", "rejected"))
		}
	}
	time.Sleep(300 * time.Millisecond) // 15 polls
	if got := reloadCount(t, ch, "file", "rejected"); got != 1 || reloadCount(t, ch, "file", "accepted") != 1 {
		t.Fatalf("after 15 polls of one bad document: rejected %v (want 1), accepted %v (want 1, the first load)",
			got, reloadCount(t, ch, "file", "accepted"))
	}
	if n := strings.Count(logs.String(), `"level":"ERROR"`); n != 1 {
		t.Fatalf("%d ERROR lines, want 1", n)
	}
}
