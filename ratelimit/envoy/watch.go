package envoy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

// DefaultPollInterval is how often WatchFile reads the file.
const DefaultPollInterval = time.Second

// WatchOption configures WatchFile.
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

// WithPollInterval sets how often the file is read (default
// [DefaultPollInterval]; must be > 0).
func WithPollInterval(d time.Duration) WatchOption {
	return watchOption(func(c *watchConfig) { c.interval = d })
}

// WithOnReload calls fn after every attempt to load a changed document,
// with its error (nil: loaded), on the watcher's goroutine; fn must not
// block. A nil fn is an error. Default: no hook.
func WithOnReload(fn func(err error)) WatchOption {
	return watchOption(func(c *watchConfig) { c.onReload, c.nilOnReload = fn, fn == nil })
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
	s.cfg.logger.Info("rate-limit configuration loaded", "source", "file:"+path)
	applied, rejected := data, []byte(nil)
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
				s.cfg.logger.Warn("rate-limit configuration unreadable; what is in force stays", "source", "file:"+path, "error", err.Error())
				continue
			}
			if bytes.Equal(data, applied) || (rejected != nil && bytes.Equal(data, rejected)) {
				continue
			}
			err = s.LoadDocument(data)
			if err != nil {
				rejected = data
				s.cfg.logger.Error("rate-limit configuration rejected; what is in force stays", "source", "file:"+path, "error", err.Error())
			} else {
				applied, rejected = data, nil
				s.cfg.logger.Info("rate-limit configuration loaded", "source", "file:"+path)
			}
			if cfg.onReload != nil {
				cfg.onReload(err)
			}
		}
	}()
	return func() { <-done }, nil
}
