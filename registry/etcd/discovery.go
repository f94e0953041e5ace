package etcd

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gingov/gingov/registry"
)

// GetService returns the instances of the named service stored in etcd,
// sorted by ID, in one read bounded by ctx and the timeout. Documents that
// cannot be decoded are skipped (and logged).
func (r *Registry) GetService(ctx context.Context, name string) ([]*registry.ServiceInstance, error) {
	if err := validSegment("service name", name); err != nil {
		return nil, err
	}
	if r.isClosed() {
		return nil, ErrClosed
	}
	kvs, _, err := r.read(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("etcd: get service %s: %w", name, err)
	}
	return r.instances(ctx, name, kvs), nil
}

func (r *Registry) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// read returns the raw documents of a service by key, and the store
// revision they were read at.
func (r *Registry) read(ctx context.Context, name string) (map[string]string, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.timeout)
	defer cancel()
	resp, err := r.client.Get(ctx, r.servicePrefix(name), clientv3.WithPrefix())
	if err != nil {
		return nil, 0, err
	}
	kvs := make(map[string]string, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		kvs[string(kv.Key)] = string(kv.Value)
	}
	return kvs, resp.Header.Revision, nil
}

// instances decodes documents, sorted by ID, skipping undecodable ones.
func (r *Registry) instances(ctx context.Context, name string, kvs map[string]string) []*registry.ServiceInstance {
	out := make([]*registry.ServiceInstance, 0, len(kvs))
	for key, val := range kvs {
		n, id, err := splitKey(r.cfg.prefix, key)
		if err == nil && n != name {
			err = fmt.Errorf("etcd: key %s is not below service %s", key, name)
		}
		var ins *registry.ServiceInstance
		if err == nil {
			ins, err = decode(n, id, []byte(val))
		}
		if err != nil {
			r.cfg.logger.LogAttrs(ctx, slog.LevelWarn, "etcd: skipping instance",
				slog.String("key", key), slog.String("error", err.Error()))
			continue
		}
		out = append(out, ins)
	}
	slices.SortFunc(out, func(a, b *registry.ServiceInstance) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Watch follows the named service. The first Next returns the instances
// stored now (waiting, with backoff, until etcd answers); each later Next
// returns the whole set once it differs from the set returned before. The
// watcher ends when ctx is done, Stop is called or the Registry is closed.
// Next must not be called concurrently with itself.
func (r *Registry) Watch(ctx context.Context, name string) (registry.Watcher, error) {
	if err := validSegment("service name", name); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(ctx)
	w := &watcher{r: r, name: name, prefix: r.servicePrefix(name), ctx: wctx, cancel: cancel}
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

// watcher follows one service: a snapshot read, then an etcd watch from
// the revision after it, applying events to the snapshot. The watch is
// rebuilt (read again, watch again) when etcd reports an error on it (a
// compaction, a cancelled watch) or closes it, and when the periodic
// resync read finds that etcd's revision went back or, twice in a row, a
// different set than the watch has produced (etcd came back without its
// data, so a resumed watch waits for revisions that mean nothing now).
type watcher struct {
	r      *Registry
	name   string
	prefix string
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once

	// Used by Next only.
	kvs         map[string]string // current documents by key
	rev         int64             // revision kvs reflects
	sent        map[string]string // documents of the set last returned; nil before the first
	wch         clientv3.WatchChan
	endWatch    context.CancelFunc // ends the etcd watch behind wch
	resync      *time.Ticker
	differed    bool // the last resync read differed from kvs
	failedReads int
}

// Next returns the instances when they differ from those it returned last.
func (w *watcher) Next() ([]*registry.ServiceInstance, error) {
	if w.resync == nil {
		w.resync = time.NewTicker(w.r.cfg.resync)
	}
	for {
		if err := w.ctx.Err(); err != nil {
			w.release()
			return nil, fmt.Errorf("etcd: watch %s stopped: %w", w.name, err)
		}
		switch {
		case w.wch != nil:
			w.wait()
		case !w.rebuild():
			w.waitRetry()
			continue
		}
		if w.wch != nil && (w.sent == nil || !maps.Equal(w.sent, w.kvs)) {
			w.sent = maps.Clone(w.kvs)
			return w.r.instances(w.ctx, w.name, w.kvs), nil
		}
	}
}

// rebuild reads the service and watches from the revision after the read.
func (w *watcher) rebuild() bool {
	w.closeWatch()
	kvs, rev, err := w.r.read(w.ctx, w.name)
	if err != nil {
		if w.ctx.Err() == nil {
			w.failedReads++
			w.r.cfg.logger.LogAttrs(w.ctx, slog.LevelWarn, "etcd: watch read failed",
				slog.String("service", w.name), slog.Int("attempt", w.failedReads), slog.String("error", err.Error()))
		}
		return false
	}
	w.failedReads = 0
	w.startWatch(kvs, rev)
	return true
}

// startWatch takes kvs read at rev as the current set and watches for
// changes after rev.
func (w *watcher) startWatch(kvs map[string]string, rev int64) {
	w.closeWatch()
	w.kvs, w.rev, w.differed = kvs, rev, false
	// RequireLeader: a member cut off from its cluster cancels the watch
	// instead of going silent, and the watch is rebuilt elsewhere.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(w.ctx))
	w.endWatch = cancel
	w.wch = w.r.client.Watch(wctx, w.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
}

// waitRetry waits before the next rebuild attempt, or until the watcher
// ends.
func (w *watcher) waitRetry() {
	t := time.NewTimer(w.r.retry.Delay(w.failedReads - 1))
	defer t.Stop()
	select {
	case <-w.ctx.Done():
	case <-t.C:
	}
}

// wait applies the next watch response, or checks the set at a resync
// tick. It leaves w.wch nil when the watch must be rebuilt.
func (w *watcher) wait() {
	select {
	case <-w.ctx.Done():
	case resp, ok := <-w.wch:
		switch {
		case !ok:
			if w.ctx.Err() == nil {
				w.r.cfg.logger.LogAttrs(w.ctx, slog.LevelInfo, "etcd: watch closed; rebuilding",
					slog.String("service", w.name))
			}
			w.closeWatch()
		case resp.Err() != nil:
			w.r.cfg.logger.LogAttrs(w.ctx, slog.LevelInfo, "etcd: watch ended; rebuilding",
				slog.String("service", w.name), slog.String("error", resp.Err().Error()))
			w.closeWatch()
		default:
			for _, ev := range resp.Events {
				switch ev.Type {
				case mvccpb.PUT:
					w.kvs[string(ev.Kv.Key)] = string(ev.Kv.Value)
				case mvccpb.DELETE:
					delete(w.kvs, string(ev.Kv.Key))
				}
			}
			if resp.Header.Revision > w.rev {
				w.rev = resp.Header.Revision
			}
		}
	case <-w.resync.C:
		kvs, rev, err := w.r.read(w.ctx, w.name)
		if err != nil {
			return // the watch resumes by itself when etcd does
		}
		same := maps.Equal(kvs, w.kvs)
		// A read newer than the watch may differ for a moment (the watch
		// is behind); a difference at two reads in a row, or a revision
		// that went back (etcd lost its data), means the watch will not
		// catch up: start over from this read.
		if rev < w.rev || (!same && w.differed) {
			w.r.cfg.logger.LogAttrs(w.ctx, slog.LevelInfo, "etcd: watch out of date; rebuilding",
				slog.String("service", w.name), slog.Int64("revision", rev), slog.Int64("watch_revision", w.rev))
			w.startWatch(kvs, rev)
			return
		}
		w.differed = !same
	}
}

func (w *watcher) closeWatch() {
	if w.endWatch != nil {
		w.endWatch()
		w.endWatch = nil
	}
	w.wch = nil
}

// release frees what Next holds once the watcher has ended.
func (w *watcher) release() {
	w.closeWatch()
	if w.resync != nil {
		w.resync.Stop()
	}
}

// Stop ends the watch; a Next in progress returns an error. It is safe to
// call more than once and concurrently with Next.
func (w *watcher) Stop() error {
	w.stopWatch()
	return nil
}

func (w *watcher) stopWatch() {
	w.once.Do(w.cancel)
}

var _ registry.Watcher = (*watcher)(nil)
