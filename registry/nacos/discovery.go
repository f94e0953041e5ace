package nacos

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"sync"

	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/gingov/gingov/registry"
)

// ErrWatcherStopped is returned by Next once Stop has been called.
var ErrWatcherStopped = errors.New("nacos: watcher stopped")

// GetService returns the healthy, enabled instances of the named service
// with a positive weight, sorted by address. The first call for a service
// subscribes to it (retried until ctx is done or the timeout (WithTimeout) has
// passed, as the client may still be connecting); later calls read the
// SDK's copy, which the server keeps current by push, without a request.
// An unknown service has no instances (and no error).
func (r *Registry) GetService(ctx context.Context, name string) ([]*registry.ServiceInstance, error) {
	if name == "" {
		return nil, errors.New("nacos: GetService: empty service name")
	}
	r.mu.Lock()
	closed, subscribed := r.closed, r.subs[name] != nil
	r.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if !subscribed {
		if err := r.subscribe(ctx, name); err != nil {
			return nil, fmt.Errorf("nacos: GetService %s: %w", name, err)
		}
	}
	// Subscribed: this reads the SDK's copy and sends no request.
	list, err := r.client.SelectAllInstances(r.selectParam(name))
	if err != nil {
		return nil, fmt.Errorf("nacos: GetService %s: %w", name, err)
	}
	return r.convert(name, list), nil
}

// subscribe makes GetService's subscription to name, which lasts until
// Close: it keeps the SDK's copy of the service, even when watchers of
// the service stop.
func (r *Registry) subscribe(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.timeout)
	defer cancel()
	param := &vo.SubscribeParam{
		ServiceName:       name,
		GroupName:         r.cfg.group,
		Clusters:          r.cfg.discoveryClusters,
		SubscribeCallback: func([]model.Instance, error) {},
	}
	if err := r.retry(ctx, func() error { return r.client.Subscribe(param) }); err != nil {
		_ = r.unsubscribe(param) // the subscription failed; so may this
		return err
	}
	r.mu.Lock()
	kept := r.subs[name] == nil && !r.closed
	if kept {
		r.subs[name] = param
	}
	r.mu.Unlock()
	if !kept { // another GetService subscribed meanwhile, or Close came
		_ = r.unsubscribe(param)
	}
	return nil
}

// unsubscribe removes the callback of param, bounded by the timeout (WithTimeout);
// the SDK tells the server once no callback for the service is left.
func (r *Registry) unsubscribe(param *vo.SubscribeParam) error {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.timeout)
	defer cancel()
	_, err := r.call(ctx, func() error { return r.client.Unsubscribe(param) })
	return err
}

func (r *Registry) selectParam(name string) vo.SelectAllInstancesParam {
	return vo.SelectAllInstancesParam{ServiceName: name, GroupName: r.cfg.group, Clusters: r.cfg.discoveryClusters}
}

// retry calls fn (through call) until it succeeds or ctx is done.
func (r *Registry) retry(ctx context.Context, fn func() error) error {
	_, err := r.retryCall(ctx, fn, nil)
	return err
}

// Watch subscribes to the named service. The subscription request is
// retried until ctx is done or the timeout (WithTimeout) has passed. The watcher's
// first Next returns the current instances (as GetService would); each
// later Next returns the new set once the server has pushed a change.
// The watch ends with Stop, when ctx is done, or when the Registry closes.
func (r *Registry) Watch(ctx context.Context, name string) (registry.Watcher, error) {
	if name == "" {
		return nil, errors.New("nacos: Watch: empty service name")
	}
	wctx, cancel := context.WithCancelCause(ctx)
	w := &watcher{r: r, name: name, ctx: wctx, cancel: cancel, signal: make(chan struct{}, 1), first: true}
	w.param = &vo.SubscribeParam{
		ServiceName:       name,
		GroupName:         r.cfg.group,
		Clusters:          r.cfg.discoveryClusters,
		SubscribeCallback: w.pushed,
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		cancel(ErrClosed)
		return nil, ErrClosed
	}
	r.watchers[w] = struct{}{}
	r.mu.Unlock()

	sctx, scancel := context.WithTimeout(ctx, r.cfg.timeout)
	defer scancel()
	err := r.retry(sctx, func() error { return r.client.Subscribe(w.param) })
	var list []model.Instance
	if err == nil {
		// The subscription filled the SDK's copy: this reads it.
		_, err = r.call(sctx, func() error {
			var err error
			list, err = r.client.SelectAllInstances(r.selectParam(name))
			return err
		})
	}
	if err != nil {
		_ = w.Stop()
		return nil, fmt.Errorf("nacos: Watch %s: %w", name, err)
	}
	w.mu.Lock()
	if !w.hasPush { // a push that came meanwhile is at least as new
		w.latest = list
		w.notify()
	}
	w.stopAfter = context.AfterFunc(ctx, func() { _ = w.stop(context.Cause(ctx)) })
	w.mu.Unlock()
	return w, nil
}

// watcher follows one service through the SDK's subscription callback.
type watcher struct {
	r      *Registry
	name   string
	param  *vo.SubscribeParam // the same pointer identifies the callback to Unsubscribe
	ctx    context.Context
	cancel context.CancelCauseFunc
	signal chan struct{} // one pending notification

	mu        sync.Mutex
	latest    []model.Instance
	hasPush   bool
	stopAfter func() bool

	nextMu sync.Mutex // Next's own state
	first  bool
	last   []*registry.ServiceInstance

	stopOnce sync.Once
	stopErr  error
}

// pushed is the SDK's callback: it runs in the SDK's push handler, so it
// only records the list and wakes Next.
func (w *watcher) pushed(list []model.Instance, _ error) {
	w.mu.Lock()
	w.latest = slices.Clone(list)
	w.hasPush = true
	w.notify()
	w.mu.Unlock()
}

func (w *watcher) notify() {
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

// Next blocks until the set of instances differs from the one it returned
// last (the first call returns the current set at once), then returns it.
// It returns ErrWatcherStopped after Stop, ErrClosed after the Registry's
// Close, and the context's error once the Watch context is done.
func (w *watcher) Next() ([]*registry.ServiceInstance, error) {
	w.nextMu.Lock()
	defer w.nextMu.Unlock()
	for {
		select {
		case <-w.ctx.Done():
			return nil, context.Cause(w.ctx)
		case <-w.signal:
		}
		w.mu.Lock()
		list := w.latest
		w.mu.Unlock()
		ins := w.r.convert(w.name, list)
		if w.first || !sameInstances(ins, w.last) {
			w.first = false
			w.last = ins
			return ins, nil
		}
	}
}

// Stop unsubscribes (bounded by the timeout (WithTimeout)) and ends the watch. It is
// safe to call more than once.
func (w *watcher) Stop() error { return w.stop(ErrWatcherStopped) }

// stop ends the watch; Next returns cause from then on.
func (w *watcher) stop(cause error) error {
	w.stopOnce.Do(func() {
		w.cancel(cause)
		w.mu.Lock()
		if w.stopAfter != nil {
			w.stopAfter()
		}
		w.mu.Unlock()
		if err := w.r.unsubscribe(w.param); err != nil {
			w.stopErr = fmt.Errorf("nacos: unsubscribe %s: %w", w.name, err)
		}
		w.r.mu.Lock()
		delete(w.r.watchers, w)
		w.r.mu.Unlock()
	})
	return w.stopErr
}

// convert turns the SDK's instances into registry instances: healthy,
// enabled and with a positive weight only, sorted by address then ID.
func (r *Registry) convert(name string, list []model.Instance) []*registry.ServiceInstance {
	out := make([]*registry.ServiceInstance, 0, len(list))
	for _, in := range list {
		if !in.Healthy || !in.Enable || in.Weight <= 0 {
			continue
		}
		out = append(out, fromNacos(name, in))
	}
	slices.SortFunc(out, func(a, b *registry.ServiceInstance) int {
		return cmp.Or(cmp.Compare(a.Address, b.Address), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// fromNacos maps one Nacos instance. Version and ID come out of the
// metadata (MetadataVersion, MetadataID) into their fields; the other keys,
// "kind" included, stay in Metadata.
func fromNacos(name string, in model.Instance) *registry.ServiceInstance {
	s := &registry.ServiceInstance{
		Name:    name,
		Address: net.JoinHostPort(in.Ip, strconv.FormatUint(in.Port, 10)),
		Weight:  fromNacosWeight(in.Weight),
	}
	for k, v := range in.Metadata {
		switch k {
		case MetadataVersion:
			s.Version = v
		case MetadataID:
			s.ID = v
		default:
			if s.Metadata == nil {
				s.Metadata = make(map[string]string, len(in.Metadata))
			}
			s.Metadata[k] = v
		}
	}
	if s.ID == "" {
		s.ID = in.InstanceId
	}
	if s.ID == "" {
		s.ID = s.InstanceID()
	}
	return s
}

func sameInstances(a, b []*registry.ServiceInstance) bool {
	return slices.EqualFunc(a, b, func(x, y *registry.ServiceInstance) bool {
		return x.ID == y.ID && x.Name == y.Name && x.Version == y.Version && x.Address == y.Address &&
			x.Weight == y.Weight && maps.Equal(x.Metadata, y.Metadata)
	})
}
