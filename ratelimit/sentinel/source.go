package sentinel

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/gingov/gingov/logging"
)

// DefaultPollInterval is how often WatchFile checks the file.
const DefaultPollInterval = time.Second

// applier feeds documents to an apply function: each valid document
// replaces what is in force; an invalid one is rejected and what is in
// force stays. Every source (file, Nacos) feeds one. A document is
// remembered by its content's hash: one equal to the last applied is
// skipped, and one equal to the last rejected too, so a bad document that
// stays in place is logged at ERROR (and reported to the hook) once, not
// on every poll or push; the next good one is logged at INFO.
type applier struct {
	ctx      context.Context // the watcher's, for the hook
	logger   *slog.Logger
	source   string
	apply    func([]byte) error
	onReload func(context.Context, Event)

	mu       sync.Mutex
	applied  *[sha256.Size]byte // nil before the first accepted document
	rejected *[sha256.Size]byte // the last rejected document, nil after an accepted one
}

func newApplier(ctx context.Context, source string, apply func([]byte) error, cfg sourceConfig) *applier {
	return &applier{ctx: ctx, logger: cfg.logger, source: source, apply: apply, onReload: cfg.onReload}
}

// Apply applies data, unless it is the last applied or the last rejected
// document (then it returns nil, or the same rejection without logging it
// again: nil too, since it was reported).
func (a *applier) Apply(data []byte) error {
	sum := sha256.Sum256(data)
	a.mu.Lock()
	defer a.mu.Unlock()
	if (a.applied != nil && *a.applied == sum) || (a.rejected != nil && *a.rejected == sum) {
		return nil
	}
	err := a.apply(data)
	if err != nil {
		a.rejected = &sum
		a.logger.Error("document rejected; what is in force stays", "source", a.source,
			"sha256", hex.EncodeToString(sum[:8]), "error", err.Error())
	} else {
		after := a.rejected != nil
		a.applied, a.rejected = &sum, nil
		a.logger.Info("document applied", "source", a.source, "sha256", hex.EncodeToString(sum[:8]), "after_rejected", after)
	}
	if a.onReload != nil {
		a.onReload(a.ctx, Event{Kind: EventReload, Source: a.source, Err: err})
	}
	return err
}

// outage logs a source's read failures once per outage: the first failure
// at WARN, the first success after it at INFO.
type outage struct {
	logger *slog.Logger
	source string
	down   bool
}

func (o *outage) fail(err error) {
	if !o.down {
		o.down = true
		o.logger.Warn("document source unreachable; what is in force stays", "source", o.source, "error", err.Error())
	}
}

func (o *outage) ok() {
	if o.down {
		o.down = false
		o.logger.Info("document source reachable again", "source", o.source)
	}
}

// LoadDocument parses a Sentinel rule document and loads it: the apply
// function that WatchFile and WatchNacos use.
func LoadDocument(data []byte) error {
	rules, err := ParseRules(data)
	if err != nil {
		return err
	}
	return Load(rules)
}

// SourceOption configures a rule source: WatchFile, WatchFileFunc,
// WatchNacos and WatchNacosFunc: [WithPollInterval], [WithOnReload] and
// [WithLogger].
type SourceOption interface{ applySource(*sourceConfig) }

type sourceOption func(*sourceConfig)

func (f sourceOption) applySource(c *sourceConfig) { f(c) }

type sourceConfig struct {
	logger      *slog.Logger
	interval    time.Duration
	onReload    func(context.Context, Event)
	nilOnReload bool
}

func newSourceConfig(opts []SourceOption) (sourceConfig, error) {
	cfg := sourceConfig{interval: DefaultPollInterval}
	for i, o := range opts {
		if nilOption(o) {
			return cfg, fmt.Errorf("sentinel: option %d is nil", i+1)
		}
		o.applySource(&cfg)
	}
	switch {
	case cfg.interval <= 0:
		return cfg, fmt.Errorf("sentinel: WithPollInterval: must be > 0, got %s", cfg.interval)
	case cfg.nilOnReload:
		return cfg, errors.New("sentinel: WithOnReload: nil function")
	}
	cfg.logger = logging.OrDefault(cfg.logger)
	return cfg, nil
}

// WithPollInterval sets how often a file or the Nacos document is read
// (default [DefaultPollInterval]; must be > 0).
func WithPollInterval(d time.Duration) SourceOption {
	return sourceOption(func(c *sourceConfig) { c.interval = d })
}

// WithOnReload calls fn after every load attempt with an [EventReload]
// event (its Err nil: loaded) and the watcher's context (the one given to
// WatchFile or WatchNacos), on the goroutine that read the document (the
// caller's for the first load, then the watcher's, or the Nacos client's
// for a pushed change); fn must not block. A document equal to the last
// applied or the last rejected one is not an attempt (so a bad document
// that stays in place is reported once). Default none; a nil fn is an
// error.
func WithOnReload(fn func(ctx context.Context, e Event)) SourceOption {
	return sourceOption(func(c *sourceConfig) { c.onReload, c.nilOnReload = fn, fn == nil })
}

// WatchFile loads the rule document at path and reloads it whenever its
// content changes, until ctx is done. The first load must succeed (a
// service should not start with rules it cannot read); later invalid
// versions are rejected while the previous rules stay, logged at ERROR once
// per distinct document however long it stays in place (the next valid one
// is logged at INFO); an unreadable file is logged at WARN once until it is
// readable again. The returned function waits for the watcher to stop after
// ctx is done.
func WatchFile(ctx context.Context, path string, opts ...SourceOption) (wait func(), err error) {
	if err := Init(); err != nil {
		return nil, err
	}
	return WatchFileFunc(ctx, path, LoadDocument, opts...)
}

// WatchFileFunc is WatchFile for any document: apply gets the file's
// content at start and whenever it changes. An error from apply rejects
// that version (logged); the first one must be accepted. A nil apply is
// an error.
func WatchFileFunc(ctx context.Context, path string, apply func([]byte) error, opts ...SourceOption) (wait func(), err error) {
	cfg, err := newSourceConfig(opts)
	if err != nil {
		return nil, err
	}
	if apply == nil {
		return nil, errors.New("sentinel: WatchFileFunc: nil apply function")
	}
	a := newApplier(ctx, "file:"+path, apply, cfg)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sentinel: read %s: %w", path, err)
	}
	if err := a.Apply(data); err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(cfg.interval)
		defer t.Stop()
		unreadable := outage{logger: a.logger, source: a.source}
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				data, err := os.ReadFile(path)
				if err != nil {
					unreadable.fail(err)
					continue
				}
				unreadable.ok()
				_ = a.Apply(data) // logged by Apply
			}
		}
	}()
	return func() { <-done }, nil
}
