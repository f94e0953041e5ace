package consul_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gingov/gingov/registry"
	"github.com/gingov/gingov/registry/consul"
)

// scriptedAgent answers GET /v1/health/service/<name> from a script of
// answers, one per request, recording the index and wait parameters of
// each; once the script is done it blocks until the request ends, as a
// blocking query with no change would.
type scriptedAgent struct {
	mu      sync.Mutex
	answers []agentAnswer
	queries []string // "index=<index> wait=<wait> passing=<passing>"
}

type agentAnswer struct {
	status int
	index  string
	body   string
}

func (a *scriptedAgent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/v1/health/service/") {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	a.mu.Lock()
	a.queries = append(a.queries, "index="+q.Get("index")+" wait="+q.Get("wait")+" passing="+q.Get("passing"))
	var ans *agentAnswer
	if len(a.answers) > 0 {
		ans = &a.answers[0]
		a.answers = a.answers[1:]
	}
	a.mu.Unlock()
	if ans == nil {
		<-r.Context().Done()
		return
	}
	w.Header().Set("X-Consul-Index", ans.index)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(ans.status)
	_, _ = w.Write([]byte(ans.body))
}

func (a *scriptedAgent) recorded() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.queries...)
}

const (
	entryA  = `{"Node":{"Node":"n1","Address":"10.0.0.1"},"Service":{"ID":"a","Service":"x","Address":"10.0.0.7","Port":80,"Meta":{"version":"v1","weight":"100","zone":"z"},"Weights":{"Passing":100,"Warning":1}}}`
	entryB  = `{"Node":{"Node":"n2","Address":"10.0.0.2"},"Service":{"ID":"b","Service":"x","Address":"","Port":81,"Tags":["edge","version=v9"],"Weights":{"Passing":3,"Warning":1}}}`
	setA    = `[` + entryA + `]`
	setAB   = `[` + entryB + `,` + entryA + `]`
	failure = `rpc error: no leader`
)

// TestWatchIndex follows a scripted agent: errors keep the last set and
// start the queries over (index 0, after backoff); a set equal to the one
// returned is not returned again; an index that goes backwards starts the
// queries over; the next different set is returned whole, sorted by ID,
// with the service address (or the node's when empty), the version from
// the metadata or else the "version=" tag, Consul's weight, and the
// metadata without the registry's own keys.
func TestWatchIndex(t *testing.T) {
	agent := &scriptedAgent{answers: []agentAnswer{
		{200, "100", setA},
		{500, "", failure},
		{500, "", failure},
		{200, "100", setA},
		{200, "5", setA}, // went backwards
		{200, "7", setAB},
	}}
	srv := httptest.NewServer(agent)
	t.Cleanup(srv.Close)
	r, err := consul.New(srv.URL, consul.WithLogger(quiet), consul.WithWatchWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	w, err := r.Watch(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	nexts := nextResults(t, w)
	first := <-nexts
	if len(first) != 1 || first[0].ID != "a" {
		t.Fatalf("first Next = %v", first)
	}
	var second []*registry.ServiceInstance
	select {
	case second = <-nexts:
	case <-time.After(5 * time.Second):
		t.Fatalf("second Next did not return; queries %q", agent.recorded())
	}
	want := []string{
		"index= wait=2000ms passing=1",
		"index=100 wait=2000ms passing=1",
		"index= wait=2000ms passing=1", // after an error: start over
		"index= wait=2000ms passing=1",
		"index=100 wait=2000ms passing=1",
		"index= wait=2000ms passing=1", // the index went backwards: start over
	}
	if got := agent.recorded(); strings.Join(got[:min(len(got), len(want))], "\n") != strings.Join(want, "\n") {
		t.Fatalf("queries\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(second) != 2 {
		t.Fatalf("second Next = %v; want a and b", second)
	}
	a, b := second[0], second[1]
	if a.ID != "a" || a.Name != "x" || a.Address != "10.0.0.7:80" || a.Version != "v1" || a.Weight != 100 ||
		len(a.Metadata) != 1 || a.Metadata["zone"] != "z" {
		t.Errorf("a = %+v", a)
	}
	if b.ID != "b" || b.Address != "10.0.0.2:81" || b.Version != "v9" || b.Weight != 3 || len(b.Metadata) != 0 {
		t.Errorf("b = %+v", b)
	}
	// The caller owns what it got.
	a.Metadata["zone"] = "changed"
}

// TestWatchRateLimit follows an agent that answers every query at once
// with a new index and the same set (as a flapping check elsewhere can
// make it do): the watcher must not spin, at most about 20 queries a
// second.
func TestWatchRateLimit(t *testing.T) {
	var mu sync.Mutex
	queries, index := 0, 100
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		queries++
		index++
		i := index
		mu.Unlock()
		w.Header().Set("X-Consul-Index", strconv.Itoa(i))
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(setA))
	}))
	t.Cleanup(srv.Close)
	r, err := consul.New(srv.URL, consul.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	w, err := r.Watch(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	nexts := nextResults(t, w)
	<-nexts
	mu.Lock()
	before := queries
	mu.Unlock()
	select {
	case set := <-nexts:
		t.Fatalf("Next returned %v; the set did not change", set)
	case <-time.After(time.Second):
	}
	mu.Lock()
	n := queries - before
	mu.Unlock()
	t.Logf("%d queries in 1s against an agent answering at once", n)
	if n > 25 || n < 5 {
		t.Fatalf("%d queries in 1s; want about 20", n)
	}
}
