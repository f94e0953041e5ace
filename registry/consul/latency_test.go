package consul_test

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/registry"
	"github.com/gingov/gingov/registry/consul"
)

// latencyRounds is how many registrations TestLatency measures.
const latencyRounds = 10

// TestLatency measures, against a real agent, how long a registration
// takes to be listed (Register called → listed as passing over the HTTP
// API), a deregistration to be gone, and a blocking-query watcher to
// return the new set after a Register and after a Deregister. Every figure
// must stay under a second; the test logs min, median and max.
func TestLatency(t *testing.T) {
	c := testenv.StartConsul(t)
	srv := readyServer(t)
	r := newRegistry(t, c, consul.WithHTTPCheck(registry.DefaultReadinessPath, checkInterval, 500*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	w, err := r.Watch(ctx, "payments")
	if err != nil {
		t.Fatal(err)
	}
	nexts := nextResults(t, w)
	if set := <-nexts; len(set) != 0 {
		t.Fatalf("first Next = %v; want no instances", set)
	}
	var visible, gone, watchAdd, watchRemove []time.Duration
	for i := range latencyRounds {
		id := "payments-" + strconv.Itoa(i)
		ins := &registry.ServiceInstance{ID: id, Name: "payments", Version: "v1", Address: srv.Listener.Addr().String()}

		start := time.Now()
		if err := r.Register(ctx, ins); err != nil {
			t.Fatal(err)
		}
		seen := make(chan time.Time, 1)
		go func() { seen <- waitNextTime(nexts, id, true) }()
		waitListed(t, c, "payments", id, true, time.Second)
		visible = append(visible, time.Since(start))
		watchAdd = append(watchAdd, (<-seen).Sub(start))

		start = time.Now()
		if err := r.Deregister(ctx, ins); err != nil {
			t.Fatal(err)
		}
		go func() { seen <- waitNextTime(nexts, id, false) }()
		waitListed(t, c, "payments", id, false, time.Second)
		gone = append(gone, time.Since(start))
		watchRemove = append(watchRemove, (<-seen).Sub(start))
	}
	for _, m := range []struct {
		name string
		d    []time.Duration
	}{
		{"register → visible (listed as passing)", visible},
		{"deregister → gone", gone},
		{"register → blocking-query watcher returns it", watchAdd},
		{"deregister → blocking-query watcher drops it", watchRemove},
	} {
		slices.Sort(m.d)
		t.Logf("%s: min %v, median %v, max %v (%d rounds)", m.name, m.d[0].Round(time.Microsecond),
			m.d[len(m.d)/2].Round(time.Microsecond), m.d[len(m.d)-1].Round(time.Microsecond), len(m.d))
		if m.d[len(m.d)-1] > time.Second {
			t.Errorf("%s: max %v; want under 1s", m.name, m.d[len(m.d)-1])
		}
	}
}

// waitNextTime reads sets from nexts until one has (or lacks) id, and
// returns when; after 5 s it returns a time far in the future, which the
// caller's bound rejects.
func waitNextTime(nexts <-chan []*registry.ServiceInstance, id string, present bool) time.Time {
	deadline := time.After(5 * time.Second)
	for {
		select {
		case set := <-nexts:
			if hasID(set, id) == present {
				return time.Now()
			}
		case <-deadline:
			return time.Now().Add(time.Hour)
		}
	}
}
