package consul

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/gingov/gingov/registry"
)

// Limits Consul puts on service metadata (checked here so that Register
// names the offending key).
const (
	metaMaxPairs    = 64
	metaMaxKeyLen   = 128
	metaMaxValueLen = 512
	metaReserved    = "consul-"
)

// registration is one registered instance and its keep-alive loop.
type registration struct {
	r       *Registry
	ins     *registry.ServiceInstance // a copy owned by the registration
	svc     *api.AgentServiceRegistration
	checkID string
	url     string // the HTTP check's URL ("" for a TTL check)

	ctx    context.Context // ends with stop
	cancel context.CancelFunc
	done   chan struct{} // closed when the loop has ended
}

// Register registers the instance with the agent, in one attempt bounded by
// ctx and the timeout, and keeps it registered until Deregister or Close
// (see the package doc). With an HTTP check it first probes the check's
// URL itself and registers the check with the status found, so that an
// instance that is ready is listed at once. Registering the same instance
// ID again replaces the registration; when that fails the earlier one goes
// on. Register and Deregister of the same instance must not run
// concurrently.
func (r *Registry) Register(ctx context.Context, ins *registry.ServiceInstance) error {
	if err := ins.Validate(); err != nil {
		return err
	}
	cp := *ins
	cp.ID = ins.InstanceID()
	cp.Metadata = maps.Clone(ins.Metadata)
	g, err := r.newRegistration(&cp)
	if err != nil {
		return err
	}

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		g.cancel()
		return ErrClosed
	}
	old := r.regs[cp.ID]
	delete(r.regs, cp.ID)
	r.mu.Unlock()
	if old != nil {
		old.stop() // no re-registration of the old definition may race this one
	}

	actx, cancel := context.WithTimeout(ctx, r.cfg.timeout)
	status, err := g.put(actx)
	cancel()
	if err != nil {
		g.cancel()
		if old != nil {
			r.resume(old)
		}
		err = fmt.Errorf("consul: register %s: %w", cp.ID, err)
		r.emit(ctx, registry.RegisterFailed, g.ins, err)
		r.cfg.logger.LogAttrs(ctx, slog.LevelWarn, "consul: register failed", append(g.attrs(), slog.String("error", err.Error()))...)
		return err
	}

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		g.cancel()
		return ErrClosed
	}
	r.regs[cp.ID] = g
	r.mu.Unlock()

	r.emit(ctx, registry.Registered, g.ins, nil)
	r.cfg.logger.LogAttrs(ctx, slog.LevelInfo, "consul: registered", append(g.attrs(), slog.String("check_status", status))...)
	go g.loop()
	return nil
}

// resume restarts the keep-alive of a registration stopped for a
// replacement that failed, unless Close or another registration of the ID
// came first. Its first round registers it again if the agent lost it.
func (r *Registry) resume(old *registration) {
	g := r.clone(old)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.regs[g.ins.ID] != nil {
		g.cancel()
		return
	}
	r.regs[g.ins.ID] = g
	go g.loop()
}

func (r *Registry) clone(old *registration) *registration {
	ctx, cancel := context.WithCancel(context.Background())
	g := *old
	g.ctx, g.cancel, g.done = ctx, cancel, make(chan struct{})
	return &g
}

// newRegistration builds the agent's registration of ins.
func (r *Registry) newRegistration(ins *registry.ServiceInstance) (*registration, error) {
	host, portStr, _ := net.SplitHostPort(ins.Address) // Validate checked it
	port, _ := strconv.Atoi(portStr)
	meta := make(map[string]string, len(ins.Metadata)+2)
	maps.Copy(meta, ins.Metadata)
	if ins.Version != "" {
		meta[MetadataVersion] = ins.Version
	}
	meta[MetadataWeight] = strconv.Itoa(ins.EffectiveWeight())
	if err := validMeta(meta); err != nil {
		return nil, err
	}
	var tags []string
	if ins.Version != "" {
		tags = append(tags, "version="+ins.Version)
	}
	tags = append(tags, r.cfg.tags...)
	checkID := "service:" + ins.ID
	check := &api.AgentServiceCheck{CheckID: checkID, Name: "gingov " + ins.Name}
	if r.cfg.deregAfter > 0 {
		check.DeregisterCriticalServiceAfter = r.cfg.deregAfter.String()
	}
	var url string
	switch r.cfg.mode() {
	case checkTTL:
		check.TTL = r.cfg.ttl.String()
		check.Notes = "passed by the gingov process itself"
	default:
		url = "http://" + net.JoinHostPort(host, portStr) + r.cfg.httpPath
		check.HTTP = url
		check.Method = http.MethodGet
		check.Interval = r.cfg.interval.String()
		check.Timeout = r.cfg.checkTimeout.String()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &registration{
		r:   r,
		ins: ins,
		svc: &api.AgentServiceRegistration{
			ID:      ins.ID,
			Name:    ins.Name,
			Address: host,
			Port:    port,
			Tags:    tags,
			Meta:    meta,
			Weights: &api.AgentWeights{Passing: ins.EffectiveWeight(), Warning: 1},
			Check:   check,
		},
		checkID: checkID,
		url:     url,
		ctx:     ctx,
		cancel:  cancel,
		done:    make(chan struct{}),
	}, nil
}

// validMeta checks the metadata against Consul's rules.
func validMeta(meta map[string]string) error {
	if len(meta) > metaMaxPairs {
		return fmt.Errorf("consul: ServiceInstance.Metadata: %d keys with version and weight; Consul accepts %d", len(meta), metaMaxPairs)
	}
	for k, v := range meta {
		switch {
		case !metaKey(k):
			return fmt.Errorf("consul: ServiceInstance.Metadata key %q: Consul accepts only letters, digits, _ and -", k)
		case len(k) > metaMaxKeyLen:
			return fmt.Errorf("consul: ServiceInstance.Metadata key %q is longer than %d", k, metaMaxKeyLen)
		case strings.HasPrefix(k, metaReserved):
			return fmt.Errorf("consul: ServiceInstance.Metadata key %q: the prefix %q is Consul's", k, metaReserved)
		case len(v) > metaMaxValueLen:
			return fmt.Errorf("consul: ServiceInstance.Metadata[%q] is longer than %d", k, metaMaxValueLen)
		}
	}
	return nil
}

// put registers the service with the agent and returns the initial status
// of its check.
func (g *registration) put(ctx context.Context) (string, error) {
	svc := *g.svc
	check := *svc.Check
	svc.Check = &check
	check.Status = api.HealthPassing // a TTL check: the process is alive and passes it
	if g.url != "" {
		check.Status = g.probe(ctx)
	}
	err := g.r.client.Agent().ServiceRegisterOpts(&svc, api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx))
	return check.Status, err
}

// probe runs the HTTP check once, as Consul would (2xx passing, 429
// warning, else critical), bounded by ctx, the check timeout and half the
// registry's timeout (the other half is the registration's).
func (g *registration) probe(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, min(g.r.cfg.checkTimeout, g.r.cfg.timeout/2))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.url, nil)
	if err != nil {
		return api.HealthCritical
	}
	req.Header.Set("User-Agent", "gingov-consul-probe")
	resp, err := g.r.http.Do(req)
	if err != nil {
		return api.HealthCritical
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return api.HealthPassing
	case resp.StatusCode == http.StatusTooManyRequests:
		return api.HealthWarning
	}
	return api.HealthCritical
}

// Deregister stops the instance's keep-alive loop and removes it from the
// agent, in one attempt bounded by ctx and the timeout (a shutdown is never
// held up by a hung agent; Consul then removes the instance once its check
// has been critical for the deregister-critical delay). An instance the
// agent does not know counts as removed. It removes the instance ID even
// when this Registry did not register it.
func (r *Registry) Deregister(ctx context.Context, ins *registry.ServiceInstance) error {
	if ins == nil {
		return errors.New("registry: nil ServiceInstance")
	}
	id := ins.InstanceID()
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	g := r.regs[id]
	delete(r.regs, id)
	r.mu.Unlock()
	if g != nil {
		g.stop()
	}

	actx, cancel := context.WithTimeout(ctx, r.cfg.timeout)
	err := r.client.Agent().ServiceDeregisterOpts(id, agentOptions(actx))
	cancel()
	attrs := []slog.Attr{slog.String("service", ins.Name), slog.String("instance_id", id)}
	if err != nil && !isNotFound(err) {
		err = fmt.Errorf("consul: deregister %s: %w", id, err)
		r.emit(ctx, registry.DeregisterFailed, ins, err)
		r.cfg.logger.LogAttrs(ctx, slog.LevelWarn, "consul: deregister failed", append(attrs, slog.String("error", err.Error()))...)
		return err
	}
	r.emit(ctx, registry.Deregistered, ins, nil)
	r.cfg.logger.LogAttrs(ctx, slog.LevelInfo, "consul: deregistered", attrs...)
	return nil
}

func (g *registration) attrs() []slog.Attr {
	return []slog.Attr{
		slog.String("service", g.ins.Name),
		slog.String("instance_id", g.ins.ID),
		slog.String("address", g.ins.Address),
	}
}

// stop ends the keep-alive loop and waits for it.
func (g *registration) stop() {
	g.cancel()
	<-g.done
}

// loop keeps the registration until stop: every keep period it runs keep;
// after a failure it retries sooner, with backoff capped at the period.
func (g *registration) loop() {
	defer close(g.done)
	period := g.r.cfg.keepPeriod()
	failures := 0
	for {
		wait := period
		if failures > 0 {
			wait = registry.Backoff{Min: minBackoff, Max: period}.Delay(failures - 1)
		}
		t := time.NewTimer(wait)
		select {
		case <-g.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if err := g.keep(); err != nil {
			if g.ctx.Err() != nil {
				return
			}
			failures++
			continue
		}
		failures = 0
	}
}

// keep runs one round of the keep-alive: it passes the TTL check, or asks
// the agent for the service, and registers the service again when the
// agent has lost it. Each call is bounded by the timeout.
func (g *registration) keep() error {
	r := g.r
	var ttlErr error
	if g.url == "" {
		ctx, cancel := context.WithTimeout(g.ctx, r.cfg.timeout)
		ttlErr = r.client.Agent().UpdateTTLOpts(g.checkID, "passed by gingov", api.HealthPassing, agentOptions(ctx))
		cancel()
		if ttlErr == nil {
			return nil
		}
	}
	ctx, cancel := context.WithTimeout(g.ctx, r.cfg.timeout)
	_, _, err := r.client.Agent().Service(g.ins.ID, agentOptions(ctx))
	cancel()
	switch {
	case err == nil && ttlErr == nil:
		return nil // an HTTP check: the agent has the service
	case err != nil && !isNotFound(err):
		if g.ctx.Err() != nil {
			return err
		}
		if ttlErr != nil {
			err = errors.Join(ttlErr, err)
		}
		err = fmt.Errorf("consul: keep-alive of %s: %w", g.ins.ID, err)
		r.emit(g.ctx, registry.HeartbeatFailed, g.ins, err)
		r.cfg.logger.LogAttrs(g.ctx, slog.LevelWarn, "consul: keep-alive failed", append(g.attrs(), slog.String("error", err.Error()))...)
		return err
	}
	// The agent lost the service (404), or its TTL check: register again.
	reason := "the agent lost the service"
	if err == nil {
		reason = "the TTL check could not be passed: " + ttlErr.Error()
	}
	ctx, cancel = context.WithTimeout(g.ctx, r.cfg.timeout)
	status, err := g.put(ctx)
	cancel()
	if err != nil {
		if g.ctx.Err() != nil {
			return err
		}
		err = fmt.Errorf("consul: register %s again: %w", g.ins.ID, err)
		r.emit(g.ctx, registry.RegisterFailed, g.ins, err)
		r.cfg.logger.LogAttrs(g.ctx, slog.LevelWarn, "consul: register failed", append(g.attrs(), slog.String("reason", reason), slog.String("error", err.Error()))...)
		return err
	}
	r.emit(g.ctx, registry.Registered, g.ins, nil)
	r.cfg.logger.LogAttrs(g.ctx, slog.LevelInfo, "consul: registered again", append(g.attrs(), slog.String("reason", reason), slog.String("check_status", status))...)
	return nil
}
