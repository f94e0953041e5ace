package setup

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/goccy/go-yaml"
)

// layer is one document of the configuration, in precedence order: each is
// merged over the ones before it, and the environment over all of them.
type layer int

const (
	layerFile    layer = iota // the file Load read (or Chain.Reload's document)
	layerOverlay              // the profile's overlay next to it
	layerNacos                // reload.nacos
	layerEtcd                 // reload.etcd
	layerConsul               // reload.consul
	numLayers
)

// layerNames name the documents of the config centres in errors (a file is
// named by its path).
var layerNames = [numLayers]string{layerNacos: "reload.nacos", layerEtcd: "reload.etcd", layerConsul: "reload.consul"}

// layers are the documents a configuration was composed from, each with
// the name its errors carry (a file's path, or the reload field).
type layers struct {
	docs  [numLayers][]byte
	names [numLayers]string
}

// compose merges the documents in precedence order (maps merge key by key,
// any other value replaces), decodes the result strictly, applies the
// environment and validates. Each document is first decoded alone, so
// that an error names the document it is in and its own line.
func (l layers) compose(profile string, environ []string) (Config, error) {
	merged := map[string]any{}
	for i, doc := range l.docs {
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		name := l.names[i]
		if name == "" {
			name = layerNames[i]
		}
		if _, err := Parse(doc); err != nil {
			if name != "" {
				return Config{}, fmt.Errorf("setup: %s: %w", name, errors.Unwrap(err))
			}
			return Config{}, err
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			return Config{}, fmt.Errorf("setup: %s: %w", name, err)
		}
		mergeMaps(merged, m)
	}
	var cfg Config
	if len(merged) > 0 {
		out, err := yaml.Marshal(merged)
		if err == nil {
			cfg, err = Parse(out)
		}
		if err != nil {
			return Config{}, fmt.Errorf("setup: the merged configuration: %w", err)
		}
	}
	cfg.profile = profile
	if err := ApplyEnv(&cfg, environ); err != nil {
		return Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	cfg.layers = l
	return cfg, nil
}

// mergeMaps merges src into dst: a map merges into a map recursively;
// every other value of src (a scalar, a list, null) replaces dst's.
func mergeMaps(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				mergeMaps(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}
