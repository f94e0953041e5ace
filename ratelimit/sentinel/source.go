package sentinel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// DefaultPollInterval is how often WatchFile checks the file.
const DefaultPollInterval = time.Second

// Applier loads rule documents: each valid document replaces the rules in
// force; an invalid one is rejected and logged, and the rules in force
// stay. It is what every rule source (file, Nacos) feeds.
type Applier struct {
	logger   *slog.Logger
	source   string
	onReload func(err error)

	mu   sync.Mutex
	last []byte
}

func newApplier(source string, logger *slog.Logger, onReload func(error)) *Applier {
	if logger == nil {
		logger = slog.Default()
	}
	return &Applier{logger: logger, source: source, onReload: onReload}
}

// Apply parses and loads data; data equal to the last applied is skipped.
func (a *Applier) Apply(data []byte) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.last != nil && bytes.Equal(a.last, data) {
		return nil
	}
	rules, err := ParseRules(data)
	if err == nil {
		err = Load(rules)
	}
	if err != nil {
		a.logger.Error("sentinel rules rejected; the rules in force stay", "source", a.source, "error", err.Error())
	} else {
		a.last = append(a.last[:0], data...)
		a.logger.Info("sentinel rules loaded", "source", a.source,
			"flow", len(rules.Flow), "hotspot", len(rules.Hotspot), "system", len(rules.System),
			"isolation", len(rules.Isolation), "circuit_breaker", len(rules.CircuitBreaker))
	}
	if a.onReload != nil {
		a.onReload(err)
	}
	return err
}

// SourceOption configures a rule source.
type SourceOption func(*sourceConfig)

type sourceConfig struct {
	logger   *slog.Logger
	interval time.Duration
	onReload func(error)
}

// WithSourceLogger logs loads and rejections (default slog.Default()).
func WithSourceLogger(l *slog.Logger) SourceOption { return func(c *sourceConfig) { c.logger = l } }

// WithPollInterval sets how often a file or the Nacos document is read
// (default DefaultPollInterval).
func WithPollInterval(d time.Duration) SourceOption { return func(c *sourceConfig) { c.interval = d } }

// WithOnReload calls fn after every load attempt with its error (nil: loaded).
func WithOnReload(fn func(error)) SourceOption { return func(c *sourceConfig) { c.onReload = fn } }

// WatchFile loads the rule document at path and reloads it whenever its
// content changes, until ctx is done. The first load must succeed (a
// service should not start with rules it cannot read); later invalid
// versions are rejected and logged while the previous rules stay. The
// returned function waits for the watcher to stop after ctx is done.
func WatchFile(ctx context.Context, path string, opts ...SourceOption) (wait func(), err error) {
	cfg := sourceConfig{interval: DefaultPollInterval}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.interval <= 0 {
		return nil, errors.New("sentinel: poll interval must be > 0")
	}
	if err := Init(); err != nil {
		return nil, err
	}
	a := newApplier("file:"+path, cfg.logger, cfg.onReload)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sentinel: read rules: %w", err)
	}
	if err := a.Apply(data); err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(cfg.interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				data, err := os.ReadFile(path)
				if err != nil {
					a.logger.Warn("sentinel rules file unreadable; the rules in force stay", "path", path, "error", err.Error())
					continue
				}
				_ = a.Apply(data) // logged by Apply
			}
		}
	}()
	return func() { <-done }, nil
}
