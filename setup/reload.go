package setup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/gingov/gingov/ratelimit/sentinel"
	"github.com/gingov/gingov/registry"
)

// Defaults of the config-centre sources.
const (
	// DefaultSourceTimeout bounds the connection to etcd and every read of
	// etcd and Consul (beyond a blocking query's wait) without a timeout.
	DefaultSourceTimeout = 5 * time.Second
	// DefaultConsulWait is how long one blocking query of reload.consul
	// waits for a change.
	DefaultConsulWait = 30 * time.Second
	// MaxConsulWait is the longest wait Consul accepts.
	MaxConsulWait = 10 * time.Minute
)

// sourceBackoff spaces the reads of a config centre that stopped
// answering: from 200 ms doubling to 5 s, with jitter.
var sourceBackoff = registry.Backoff{Min: 200 * time.Millisecond, Max: 5 * time.Second}

// reloadFrom is reload of one layer for a watcher of source, reporting each
// attempt to the metrics and to the WithOnReload hook.
func (ch *Chain) reloadFrom(ctx context.Context, source string, at layer) func([]byte) error {
	kind, _, _ := strings.Cut(source, ":")
	return func(data []byte) error {
		err := ch.reload(at, data)
		if ch.gov != nil {
			ch.gov.OnConfigReload(ctx, kind, err)
		}
		if fn := ch.opts.onReload; fn != nil {
			fn(ctx, Event{Source: source, Err: err, Time: time.Now()})
		}
		return err
	}
}

// docApplier feeds the documents of the etcd and Consul sources to apply
// with the rule of the file and Nacos sources (ratelimit/sentinel's):
// a document equal to the last applied or the last rejected one (by
// content hash) is skipped, so a bad document that stays in place is
// logged at ERROR once, and the next good one is logged at INFO.
type docApplier struct {
	logger *slog.Logger
	source string
	apply  func([]byte) error

	mu       sync.Mutex
	applied  *[sha256.Size]byte
	rejected *[sha256.Size]byte
	down     bool // the source's last read failed (logged once)
	missing  bool // the document was missing at the last read (logged once)
}

func newDocApplier(logger *slog.Logger, source string, apply func([]byte) error) *docApplier {
	return &docApplier{logger: logger, source: source, apply: apply}
}

// Apply applies data unless it was the last applied or rejected document.
func (a *docApplier) Apply(data []byte) error {
	sum := sha256.Sum256(data)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.missing = false
	if (a.applied != nil && *a.applied == sum) || (a.rejected != nil && *a.rejected == sum) {
		return nil
	}
	err := a.apply(data)
	if err != nil {
		a.rejected = &sum
		a.logger.Error("document rejected; what is in force stays", "source", a.source,
			"sha256", hex.EncodeToString(sum[:8]), "error", err.Error())
		return err
	}
	after := a.rejected != nil
	a.applied, a.rejected = &sum, nil
	a.logger.Info("document applied", "source", a.source, "sha256", hex.EncodeToString(sum[:8]), "after_rejected", after)
	return nil
}

// Missing records that the document is not there (deleted, or a server
// that came back empty): what is in force stays; logged once.
func (a *docApplier) Missing() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.missing {
		a.missing = true
		a.logger.Warn("document missing; what is in force stays", "source", a.source)
	}
}

// Failed records a failed read: the first of an outage is logged at WARN.
func (a *docApplier) Failed(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.down {
		a.down = true
		a.logger.Warn("document source unreachable; what is in force stays, retrying", "source", a.source, "error", err.Error())
	}
}

// Reached records a successful read: the first after an outage is logged
// at INFO.
func (a *docApplier) Reached() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.down {
		a.down = false
		a.logger.Info("document source reachable again", "source", a.source)
	}
}

// sleep waits d or until ctx is done, and says whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// DefaultNacosGroup is the group of a NacosDoc without one: Sentinel's
// (and Nacos's) default group.
const DefaultNacosGroup = sentinel.DefaultNacosGroup

func (n *NacosDoc) group() string {
	if n.Group == "" {
		return DefaultNacosGroup
	}
	return n.Group
}
