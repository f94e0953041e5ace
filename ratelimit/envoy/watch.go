package envoy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// DefaultPollInterval is how often WatchFile reads the file and WatchNacos
// reads the document besides the server's pushes.
const DefaultPollInterval = time.Second

// maxRejected bounds how many distinct rejected documents a watcher
// remembers, so that each is logged once.
const maxRejected = 64

// WatchOption configures WatchFile and WatchNacos.
type WatchOption interface{ applyWatch(*watchConfig) }

type watchOption func(*watchConfig)

func (f watchOption) applyWatch(c *watchConfig) { f(c) }

type watchConfig struct {
	interval    time.Duration
	onReload    func(error)
	nilOnReload bool
}

func newWatchConfig(opts []WatchOption) (watchConfig, error) {
	cfg := watchConfig{interval: DefaultPollInterval}
	for i, o := range opts {
		if f, ok := o.(watchOption); o == nil || (ok && f == nil) {
			return cfg, fmt.Errorf("envoy: option %d is nil", i+1)
		}
		o.applyWatch(&cfg)
	}
	switch {
	case cfg.interval <= 0:
		return cfg, fmt.Errorf("envoy: WithPollInterval: must be > 0, got %s", cfg.interval)
	case cfg.nilOnReload:
		return cfg, errors.New("envoy: WithOnReload: nil function")
	}
	return cfg, nil
}

// WithPollInterval sets how often the file (or the Nacos document) is read
// (default [DefaultPollInterval]; must be > 0).
func WithPollInterval(d time.Duration) WatchOption {
	return watchOption(func(c *watchConfig) { c.interval = d })
}

// WithOnReload calls fn after every attempt to load a changed document,
// with its error (nil: loaded), on the watcher's goroutine; fn must not
// block. A document already rejected is not tried again, and fn is not
// called for it. A nil fn is an error. Default: no hook.
func WithOnReload(fn func(err error)) WatchOption {
	return watchOption(func(c *watchConfig) { c.onReload, c.nilOnReload = fn, fn == nil })
}

// reloader applies changed documents to a Service: each distinct invalid
// document is logged once at ERROR and never replaces the configuration in
// force. It is safe for concurrent use (Nacos pushes and polls race).
type reloader struct {
	s      *Service
	source string
	cfg    watchConfig

	mu       sync.Mutex
	applied  []byte
	rejected map[[sha256.Size]byte]struct{}
}

func newReloader(s *Service, source string, cfg watchConfig, applied []byte) *reloader {
	return &reloader{s: s, source: source, cfg: cfg, applied: applied, rejected: map[[sha256.Size]byte]struct{}{}}
}

// apply loads data unless it is the document in force or one already
// rejected.
func (r *reloader) apply(data []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if bytes.Equal(data, r.applied) {
		return
	}
	sum := sha256.Sum256(data)
	if _, seen := r.rejected[sum]; seen {
		return
	}
	err := r.s.LoadDocument(data)
	if err != nil {
		if len(r.rejected) >= maxRejected {
			clear(r.rejected)
		}
		r.rejected[sum] = struct{}{}
		r.s.cfg.logger.Error("rate-limit configuration rejected; what is in force stays", "source", r.source, "error", err.Error())
	} else {
		r.applied = bytes.Clone(data)
		clear(r.rejected) // a document rejected before is news again once another one is in force
		r.s.cfg.logger.Info("rate-limit configuration loaded", "source", r.source)
	}
	if r.cfg.onReload != nil {
		r.cfg.onReload(err)
	}
}

// WatchFile loads the YAML configuration at path (ParseConfig) and reloads
// it whenever the file's content changes, until ctx is done. The first load
// must succeed. Later, an invalid document is rejected and logged once at
// ERROR (once per distinct content), and the configuration in force stays;
// an unreadable file is logged at WARN. The returned function waits for the
// watcher to stop after ctx is done.
func (s *Service) WatchFile(ctx context.Context, path string, opts ...WatchOption) (wait func(), err error) {
	cfg, err := newWatchConfig(opts)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("envoy: read %s: %w", path, err)
	}
	if err := s.LoadDocument(data); err != nil {
		return nil, err
	}
	source := "file:" + path
	s.cfg.logger.Info("rate-limit configuration loaded", "source", source)
	r := newReloader(s, source, cfg, data)
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
			}
			data, err := os.ReadFile(path)
			if err != nil {
				s.cfg.logger.Warn("rate-limit configuration unreadable; what is in force stays", "source", source, "error", err.Error())
				continue
			}
			r.apply(data)
		}
	}()
	return func() { <-done }, nil
}
