package consul

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/gingov/gingov/registry"
)

// GetService returns the instances of the named service whose checks all
// pass, sorted by ID, in one query bounded by ctx and the timeout.
func (r *Registry) GetService(ctx context.Context, name string) ([]*registry.ServiceInstance, error) {
	if name == "" {
		return nil, errors.New("consul: empty service name")
	}
	if r.isClosed() {
		return nil, ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.timeout)
	defer cancel()
	entries, _, err := r.client.Health().Service(name, "", true, r.healthOptions(ctx))
	if err != nil {
		return nil, fmt.Errorf("consul: get service %s: %w", name, err)
	}
	return instances(entries), nil
}

// instances converts the agent's entries, sorted by ID.
func instances(entries []*api.ServiceEntry) []*registry.ServiceInstance {
	out := make([]*registry.ServiceInstance, 0, len(entries))
	for _, e := range entries {
		if e == nil || e.Service == nil {
			continue
		}
		out = append(out, instance(e))
	}
	slices.SortFunc(out, func(a, b *registry.ServiceInstance) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// instance converts one entry. An empty service address means the node's,
// as in Consul's DNS. The version comes from the "version" metadata, else
// from a "version=" tag (as Kratos registers it); the weight is Consul's
// passing weight.
func instance(e *api.ServiceEntry) *registry.ServiceInstance {
	s := e.Service
	host := s.Address
	if host == "" && e.Node != nil {
		host = e.Node.Address
	}
	ins := &registry.ServiceInstance{
		ID:      s.ID,
		Name:    s.Service,
		Address: net.JoinHostPort(host, strconv.Itoa(s.Port)),
		Weight:  max(s.Weights.Passing, 0),
	}
	md := make(map[string]string, len(s.Meta))
	for k, v := range s.Meta {
		switch k {
		case MetadataVersion:
			ins.Version = v
		case MetadataWeight:
		default:
			md[k] = v
		}
	}
	if len(md) > 0 {
		ins.Metadata = md
	}
	if ins.Version == "" {
		for _, tag := range s.Tags {
			if v, ok := strings.CutPrefix(tag, "version="); ok {
				ins.Version = v
				break
			}
		}
	}
	return ins
}

// Watch follows the named service with blocking queries. The first Next
// returns the healthy instances now (retrying with backoff until the agent
// answers); each later Next returns the whole set once it differs from the
// set returned before. Errors are logged and retried with backoff while
// the last set stays the caller's. The watcher ends when ctx is done, Stop
// is called or the Registry is closed. Next must not be called
// concurrently with itself.
func (r *Registry) Watch(ctx context.Context, name string) (registry.Watcher, error) {
	if name == "" {
		return nil, errors.New("consul: empty service name")
	}
	wctx, cancel := context.WithCancel(ctx)
	w := &watcher{r: r, name: name, ctx: wctx, cancel: cancel}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		cancel()
		return nil, ErrClosed
	}
	r.watchers[w] = struct{}{}
	r.mu.Unlock()
	// Forget the watcher once it has ended, Stop called or not.
	context.AfterFunc(wctx, func() {
		r.mu.Lock()
		delete(r.watchers, w)
		r.mu.Unlock()
	})
	return w, nil
}

// minQueryGap is the shortest time between the starts of two queries of a
// watcher when the first returned an unchanged set: at most 20 such
// queries a second. A change is still returned as soon as its query
// answers.
const minQueryGap = 50 * time.Millisecond

// watcher follows one service with blocking queries.
type watcher struct {
	r      *Registry
	name   string
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once

	// Used by Next only.
	index    uint64                      // the X-Consul-Index to wait on; 0: answer at once
	sent     []*registry.ServiceInstance // the set last returned
	sentAny  bool                        // Next has returned a set
	failures int
}

// Next returns the instances when they differ from those it returned last.
func (w *watcher) Next() ([]*registry.ServiceInstance, error) {
	for {
		if err := w.ctx.Err(); err != nil {
			return nil, fmt.Errorf("consul: watch %s stopped: %w", w.name, err)
		}
		start := time.Now()
		set, err := w.query()
		if err != nil {
			if w.ctx.Err() != nil {
				continue
			}
			w.failures++
			wait := registry.Backoff{Min: minBackoff, Max: MaxBackoff}.Delay(w.failures - 1)
			w.r.cfg.logger.LogAttrs(w.ctx, slog.LevelWarn, "consul: watch query failed; the last set is kept",
				slog.String("service", w.name), slog.Int("attempt", w.failures),
				slog.Duration("retry_in", wait), slog.String("error", err.Error()))
			w.index = 0 // the agent may be another one, or restarted: read afresh
			w.sleep(wait)
			continue
		}
		w.failures = 0
		if !w.sentAny || !sameSet(set, w.sent) {
			w.sent, w.sentAny = set, true
			return clone(set), nil
		}
		// The index moved but the set did not (another check's output, an
		// agent that answers at once): space such queries out, so that a
		// watcher never spins against the agent.
		if gap := minQueryGap - time.Since(start); gap > 0 {
			w.sleep(gap)
		}
	}
}

// sleep waits for d or until the watcher ends.
func (w *watcher) sleep(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-w.ctx.Done():
	case <-t.C:
	}
}

// query runs one blocking query from w.index and moves the index on. The
// call is bounded by the wait, Consul's jitter on it (wait/16) and the
// timeout.
func (w *watcher) query() ([]*registry.ServiceInstance, error) {
	wait := w.r.cfg.watchWait
	ctx, cancel := context.WithTimeout(w.ctx, wait+wait/16+w.r.cfg.timeout)
	defer cancel()
	q := w.r.healthOptions(ctx)
	q.WaitIndex, q.WaitTime = w.index, wait
	entries, meta, err := w.r.client.Health().Service(w.name, "", true, q)
	if err != nil {
		return nil, err
	}
	switch next := meta.LastIndex; {
	case next < w.index:
		// The index went backwards (the cluster restarted or lost its
		// state): start over with a query answered at once.
		w.r.cfg.logger.LogAttrs(w.ctx, slog.LevelInfo, "consul: watch index went backwards; starting over",
			slog.String("service", w.name), slog.Uint64("index", next), slog.Uint64("previous_index", w.index))
		w.index = 0
	case next == 0:
		w.index = 1 // never 0 again: that would not block
	default:
		w.index = next
	}
	return instances(entries), nil
}

// sameSet compares two sets sorted by ID, field by field.
func sameSet(a, b []*registry.ServiceInstance) bool {
	return slices.EqualFunc(a, b, func(x, y *registry.ServiceInstance) bool {
		return x.ID == y.ID && x.Name == y.Name && x.Version == y.Version && x.Address == y.Address &&
			x.Weight == y.Weight && maps.Equal(x.Metadata, y.Metadata)
	})
}

// clone copies a set so that the caller may change what it gets.
func clone(set []*registry.ServiceInstance) []*registry.ServiceInstance {
	out := make([]*registry.ServiceInstance, len(set))
	for i, ins := range set {
		cp := *ins
		cp.Metadata = maps.Clone(ins.Metadata)
		out[i] = &cp
	}
	return out
}

// Stop ends the watch; a Next in progress returns an error. It is safe to
// call more than once and concurrently with Next.
func (w *watcher) Stop() error {
	w.stopWatch()
	return nil
}

func (w *watcher) stopWatch() { w.once.Do(w.cancel) }

var _ registry.Watcher = (*watcher)(nil)
