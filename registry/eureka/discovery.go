package eureka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gingov/gingov/registry"
)

// GetService returns the UP instances of the named service, asking GET
// /apps/{NAME} (the application name upper-cased, as Register and Spring
// Cloud register it), sorted by ID. An unknown service has no instances
// and no error. Instances that are DOWN, OUT_OF_SERVICE, STARTING or
// without a usable address are left out. Version and Weight come from the
// "version" and "weight" metadata, which are not repeated in Metadata.
func (e *Registry) GetService(ctx context.Context, name string) ([]*registry.ServiceInstance, error) {
	if name == "" {
		return nil, errors.New("eureka: GetService needs a service name")
	}
	code, body, err := e.do(ctx, http.MethodGet, "/apps/"+url.PathEscape(appName(name)), nil)
	if err != nil {
		return nil, fmt.Errorf("eureka: get service %s: %w", name, err)
	}
	switch code {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, nil
	default:
		return nil, fmt.Errorf("eureka: get service %s: status %d: %s", name, code, snippet(body))
	}
	raw, err := decodeApplication(body)
	if err != nil {
		return nil, fmt.Errorf("eureka: get service %s: decode: %w", name, err)
	}
	return upInstances(raw, name), nil
}

// upInstances converts the UP instances with a usable address, sorted by
// ID.
func upInstances(raw []instance, name string) []*registry.ServiceInstance {
	var out []*registry.ServiceInstance
	for i := range raw {
		if !strings.EqualFold(raw[i].Status, string(Up)) {
			continue
		}
		if s, ok := raw[i].toServiceInstance(name); ok {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b *registry.ServiceInstance) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Watch follows the named service by polling GetService every poll
// interval (Eureka has no push; see [WithPollInterval]). Watch asks
// once before it returns, and fails if that fails; the watcher's first
// Next returns that answer, and later Nexts return only when the set of
// UP instances (IDs, addresses, versions, weights, metadata) changed. A
// failed poll is logged and keeps the last set. The watcher ends when ctx
// is done, Stop is called, or e is closed.
func (e *Registry) Watch(ctx context.Context, name string) (registry.Watcher, error) {
	list, err := e.GetService(ctx, name)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(ctx)
	stopAfter := context.AfterFunc(e.ctx, cancel) // Close ends the watch
	return &watcher{e: e, name: name, ctx: wctx, cancel: func() { stopAfter(); cancel() }, last: list, first: true}, nil
}

// watcher polls one service. Next is for one goroutine at a time;
// Stop may be called from any.
type watcher struct {
	e      *Registry
	name   string
	ctx    context.Context
	cancel context.CancelFunc
	last   []*registry.ServiceInstance
	first  bool
}

func (w *watcher) Next() ([]*registry.ServiceInstance, error) {
	if err := w.ctx.Err(); err != nil {
		return nil, w.stopped(err)
	}
	if w.first {
		w.first = false
		return w.last, nil
	}
	t := time.NewTimer(w.e.cfg.poll)
	defer t.Stop()
	for {
		select {
		case <-w.ctx.Done():
			return nil, w.stopped(w.ctx.Err())
		case <-t.C:
		}
		list, err := w.e.GetService(w.ctx, w.name)
		if err != nil {
			if w.ctx.Err() != nil {
				return nil, w.stopped(w.ctx.Err())
			}
			w.e.logger.LogAttrs(w.ctx, slog.LevelWarn, "eureka watch poll failed",
				slog.String("service", w.name), slog.String("error", err.Error()))
		} else if !sameInstances(list, w.last) {
			w.last = list
			return list, nil
		}
		t.Reset(w.e.cfg.poll)
	}
}

func (w *watcher) stopped(err error) error {
	return fmt.Errorf("eureka: watch %s stopped: %w", w.name, err)
}

func (w *watcher) Stop() error {
	w.cancel()
	return nil
}

// sameInstances compares two lists sorted by ID.
func sameInstances(a, b []*registry.ServiceInstance) bool {
	return slices.EqualFunc(a, b, func(x, y *registry.ServiceInstance) bool {
		return x.ID == y.ID && x.Name == y.Name && x.Address == y.Address && x.Version == y.Version &&
			x.Weight == y.Weight && maps.Equal(x.Metadata, y.Metadata)
	})
}
