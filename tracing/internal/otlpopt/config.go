package otlpopt

import (
	"fmt"
	"maps"
)

// Config is what both exporter packages are given: the collector endpoint
// ("" for the environment's or the default), whether to send without TLS,
// and the headers added to every export.
type Config struct {
	Endpoint string
	Insecure bool
	Headers  map[string]string
}

// Endpoint records WithEndpoint's value.
func Endpoint(ep string) func(*Config) { return func(c *Config) { c.Endpoint = ep } }

// Insecure records WithInsecure.
func Insecure(c *Config) { c.Insecure = true }

// Headers records WithHeaders' names and values: calls add up, a later
// value for a name wins.
func Headers(h map[string]string) func(*Config) {
	return func(c *Config) {
		if c.Headers == nil {
			c.Headers = make(map[string]string, len(h))
		}
		maps.Copy(c.Headers, h)
	}
}

// Apply applies the package's options in order over the zero Config with
// apply (the package's unexported option method; O is its Option
// interface, so a nil option is a nil interface) and checks the result.
// Errors are prefixed with pkg: "pkg: option 2 is nil",
// "pkg: WithEndpoint: …", "pkg: WithHeaders: …".
func Apply[O any](pkg string, opts []O, apply func(O, *Config)) (Config, error) {
	var cfg Config
	for i, o := range opts {
		if any(o) == nil {
			return cfg, fmt.Errorf("%s: option %d is nil", pkg, i+1)
		}
		apply(o, &cfg)
	}
	if cfg.Endpoint != "" {
		if err := CheckEndpoint(cfg.Endpoint); err != nil {
			return cfg, fmt.Errorf("%s: WithEndpoint: %w", pkg, err)
		}
	}
	if err := CheckHeaders(cfg.Headers); err != nil {
		return cfg, fmt.Errorf("%s: WithHeaders: %w", pkg, err)
	}
	return cfg, nil
}
