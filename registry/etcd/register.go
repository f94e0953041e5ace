package etcd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gingov/gingov/registry"
)

// registration is one registered instance and its keep-alive loop.
type registration struct {
	r     *Registry
	ins   *registry.ServiceInstance // a copy owned by the registration
	key   string
	value string

	ctx    context.Context // ends with stop
	cancel context.CancelFunc
	done   chan struct{} // closed when the loop has ended

	mu    sync.Mutex
	lease clientv3.LeaseID // the last lease granted
}

// errKeepAliveEnded is reported (as a HeartbeatFailed event) when etcd
// stops renewing a registration's lease.
var errKeepAliveEnded = errors.New("etcd: lease keep-alive ended (lease expired or lost, or etcd unreachable for a TTL)")

// Register puts the instance at <prefix>/<name>/<id> under a new lease and
// keeps it there until Deregister or Close, re-registering whenever the
// lease is lost. It retries a failed first registration with backoff until
// ctx is done (each attempt bounded by the timeout), so a service can start
// before etcd is reachable; it returns once etcd has accepted the instance.
// Registering the same instance (same name and ID) again replaces the
// stored document and its lease; when that fails, the earlier registration
// goes on. Register and Deregister of the same instance must not run
// concurrently.
func (r *Registry) Register(ctx context.Context, ins *registry.ServiceInstance) error {
	if err := ins.Validate(); err != nil {
		return err
	}
	if err := validSegment("ServiceInstance.Name", ins.Name); err != nil {
		return err
	}
	if err := validSegment("instance ID", ins.InstanceID()); err != nil {
		return err
	}
	cp := *ins
	cp.ID = ins.InstanceID()
	cp.Metadata = maps.Clone(ins.Metadata)
	value, err := encode(&cp)
	if err != nil {
		return err
	}
	key := r.key(cp.Name, cp.ID)

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	old := r.regs[key]
	delete(r.regs, key)
	r.mu.Unlock()
	if old != nil {
		old.stop()
	}

	reg := r.newRegistration(&cp, key, value)
	lease, err := reg.registerUntil(ctx)
	if err != nil {
		reg.cancel()
		close(reg.done)
		if old != nil {
			// The replacement failed: keep the instance as it was.
			r.resume(old)
		}
		return fmt.Errorf("etcd: register %s: %w", key, err)
	}
	var prev clientv3.LeaseID // the replaced registration's lease, revoked by the loop
	if old != nil {
		if ol := old.currentLease(); ol != lease {
			prev = ol
		}
	}

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		reg.cancel()
		close(reg.done)
		r.revoke(context.Background(), lease)
		return ErrClosed
	}
	r.regs[key] = reg
	r.mu.Unlock()

	r.emit(ctx, registry.Registered, reg.ins, nil)
	r.cfg.logger.LogAttrs(ctx, slog.LevelInfo, "etcd: registered", reg.attrs(lease)...)
	go reg.loop(lease, prev)
	return nil
}

func (r *Registry) newRegistration(ins *registry.ServiceInstance, key, value string) *registration {
	ctx, cancel := context.WithCancel(context.Background())
	return &registration{r: r, ins: ins, key: key, value: value, ctx: ctx, cancel: cancel, done: make(chan struct{})}
}

// resume restarts a stopped registration after a failed replacement: it
// puts the earlier document again under a new lease in the background (the
// failed attempt may have moved the key to a lease nobody keeps alive) and
// keeps it alive, unless another registration of the key or Close came
// first.
func (r *Registry) resume(old *registration) {
	g := r.newRegistration(old.ins, old.key, old.value)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.regs[g.key] != nil {
		g.cancel()
		close(g.done)
		return
	}
	r.regs[g.key] = g
	go g.loop(0, old.currentLease())
}

// Deregister stops the instance's keep-alive, deletes its key and revokes
// its lease, bounded by ctx and the timeout (one attempt: a shutdown is
// never held up by an unreachable etcd; the lease then expires within one
// TTL). It deletes the key even when this Registry did not register it.
func (r *Registry) Deregister(ctx context.Context, ins *registry.ServiceInstance) error {
	if ins == nil {
		return errors.New("registry: nil ServiceInstance")
	}
	if err := validSegment("ServiceInstance.Name", ins.Name); err != nil {
		return err
	}
	id := ins.InstanceID()
	if err := validSegment("instance ID", id); err != nil {
		return err
	}
	key := r.key(ins.Name, id)

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	reg := r.regs[key]
	delete(r.regs, key)
	r.mu.Unlock()

	var lease clientv3.LeaseID
	if reg != nil {
		reg.stop() // no re-registration may race the delete
		lease = reg.currentLease()
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.timeout)
	defer cancel()
	_, err := r.client.Delete(ctx, key)
	if err == nil && lease != 0 {
		// The key is gone; revoking only spares etcd an idle lease.
		if _, rerr := r.client.Revoke(ctx, lease); rerr != nil && !errors.Is(rerr, rpctypes.ErrLeaseNotFound) {
			r.cfg.logger.LogAttrs(ctx, slog.LevelDebug, "etcd: revoke lease", slog.String("key", key), slog.String("error", rerr.Error()))
		}
	}
	if err != nil {
		err = fmt.Errorf("etcd: deregister %s: %w", key, err)
		r.emit(ctx, registry.DeregisterFailed, ins, err)
		r.cfg.logger.LogAttrs(ctx, slog.LevelWarn, "etcd: deregister failed",
			slog.String("service", ins.Name), slog.String("instance_id", id), slog.String("key", key),
			slog.String("error", err.Error()))
		return err
	}
	r.emit(ctx, registry.Deregistered, ins, nil)
	r.cfg.logger.LogAttrs(ctx, slog.LevelInfo, "etcd: deregistered",
		slog.String("service", ins.Name), slog.String("instance_id", id), slog.String("key", key))
	return nil
}

// revoke revokes a lease, bounded by ctx and the timeout, ignoring
// failures (the lease expires by itself).
func (r *Registry) revoke(ctx context.Context, lease clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.timeout)
	defer cancel()
	_, _ = r.client.Revoke(ctx, lease)
}

func (g *registration) attrs(lease clientv3.LeaseID) []slog.Attr {
	return []slog.Attr{
		slog.String("service", g.ins.Name),
		slog.String("instance_id", g.ins.ID),
		slog.String("key", g.key),
		slog.String("lease_id", strconv.FormatInt(int64(lease), 16)),
	}
}

func (g *registration) currentLease() clientv3.LeaseID {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lease
}

// stop ends the keep-alive loop and waits for it.
func (g *registration) stop() {
	g.cancel()
	<-g.done
}

// grantAndPut grants a lease and puts the instance under it, each call
// bounded by the timeout.
func (g *registration) grantAndPut(ctx context.Context) (clientv3.LeaseID, error) {
	r := g.r
	gctx, cancel := context.WithTimeout(ctx, r.cfg.timeout)
	resp, err := r.client.Grant(gctx, r.ttlSeconds)
	cancel()
	if err != nil {
		return 0, fmt.Errorf("grant lease: %w", err)
	}
	// Recorded before the put so that Deregister revokes it even when the
	// put was applied but its answer lost.
	g.mu.Lock()
	g.lease = resp.ID
	g.mu.Unlock()
	pctx, cancel := context.WithTimeout(ctx, r.cfg.timeout)
	_, err = r.client.Put(pctx, g.key, g.value, clientv3.WithLease(resp.ID))
	cancel()
	if err != nil {
		return 0, fmt.Errorf("put: %w", err)
	}
	return resp.ID, nil
}

// registerUntil calls grantAndPut until it succeeds or ctx (or the
// registration) is done, waiting with backoff between attempts and
// reporting each failure.
func (g *registration) registerUntil(ctx context.Context) (clientv3.LeaseID, error) {
	ctx, cancel := mergeCancel(ctx, g.ctx)
	defer cancel()
	for attempt := 0; ; attempt++ {
		lease, err := g.grantAndPut(ctx)
		if err == nil {
			return lease, nil
		}
		if ctx.Err() != nil {
			return 0, errors.Join(ctx.Err(), err)
		}
		g.r.emit(ctx, registry.RegisterFailed, g.ins, err)
		g.r.cfg.logger.LogAttrs(ctx, slog.LevelWarn, "etcd: register failed",
			slog.String("service", g.ins.Name), slog.String("instance_id", g.ins.ID), slog.String("key", g.key),
			slog.Int("attempt", attempt+1), slog.String("error", err.Error()))
		t := time.NewTimer(g.r.retry.Delay(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, errors.Join(ctx.Err(), err)
		case <-t.C:
		}
	}
}

// loop keeps the registration alive: it follows the lease's keep-alive and,
// whenever that ends, registers again under a new lease (lease 0: register
// first). It never gives up before stop. A previous lease of the key (prev,
// when not 0) is revoked once the keep-alive of the new one has started:
// the key has moved to the new lease, and etcd may still hold the old one
// (it renews the leases it finds when it restarts).
func (g *registration) loop(lease, prev clientv3.LeaseID) {
	defer close(g.done)
	for {
		if lease == 0 {
			var err error
			if lease, err = g.registerUntil(g.ctx); err != nil {
				return // stopped
			}
			g.r.emit(g.ctx, registry.Registered, g.ins, nil)
			g.r.cfg.logger.LogAttrs(g.ctx, slog.LevelInfo, "etcd: registered again", g.attrs(lease)...)
		}
		ch, err := g.r.client.KeepAlive(g.ctx, lease)
		if prev != 0 {
			g.r.revoke(g.ctx, prev)
		}
		if err == nil {
			for range ch { //nolint:revive // each answer means the lease was renewed; the channel closes when it is lost
			}
			err = errKeepAliveEnded
		}
		if g.ctx.Err() != nil {
			return
		}
		err = fmt.Errorf("etcd: keep-alive of %s: %w", g.key, err)
		g.r.emit(g.ctx, registry.HeartbeatFailed, g.ins, err)
		g.r.cfg.logger.LogAttrs(g.ctx, slog.LevelWarn, "etcd: keep-alive failed; registering again",
			append(g.attrs(lease), slog.String("error", err.Error()))...)
		prev, lease = lease, 0
	}
}

// mergeCancel returns a context with a's values and deadline that is also
// cancelled when b is done.
func mergeCancel(a, b context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(a)
	stop := context.AfterFunc(b, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}
