package etcd

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"strings"

	"github.com/gingov/gingov/registry"
)

// record is the JSON document stored for an instance. Endpoints repeats the
// address as a URL ("http://host:port") for clients that look for URLs.
type record struct {
	ID        string            `json:"id"`
	Name      string            `json:"name"`
	Version   string            `json:"version,omitempty"`
	Address   string            `json:"address"`
	Endpoints []string          `json:"endpoints,omitempty"`
	Metadata  map[string]string `json:"metadata,omitempty"`
	Weight    int               `json:"weight,omitempty"`
}

// encode returns the stored form of ins (validated by the caller). The
// version is also stored in the metadata under "version", as every gingov
// backend does.
func encode(ins *registry.ServiceInstance) (string, error) {
	md := maps.Clone(ins.Metadata)
	if ins.Version != "" {
		if md == nil {
			md = map[string]string{}
		}
		md["version"] = ins.Version
	}
	b, err := json.Marshal(record{
		ID:        ins.InstanceID(),
		Name:      ins.Name,
		Version:   ins.Version,
		Address:   ins.Address,
		Endpoints: []string{"http://" + ins.Address},
		Metadata:  md,
		Weight:    ins.Weight,
	})
	if err != nil {
		return "", fmt.Errorf("etcd: encode instance: %w", err)
	}
	return string(b), nil
}

// decode reads an instance stored under key <prefix>/<name>/<id>; name and
// id fill what the document leaves out. An instance without a usable
// address is an error.
func decode(name, id string, value []byte) (*registry.ServiceInstance, error) {
	var rec record
	if err := json.Unmarshal(value, &rec); err != nil {
		return nil, fmt.Errorf("etcd: decode instance %s/%s: %w", name, id, err)
	}
	ins := &registry.ServiceInstance{
		ID:       rec.ID,
		Name:     rec.Name,
		Version:  rec.Version,
		Address:  rec.Address,
		Metadata: rec.Metadata,
		Weight:   rec.Weight,
	}
	if ins.ID == "" {
		ins.ID = id
	}
	if ins.Name == "" {
		ins.Name = name
	}
	if ins.Version == "" {
		ins.Version = ins.Metadata["version"]
	}
	if ins.Address == "" {
		ins.Address = addressFromEndpoints(rec.Endpoints)
	}
	if ins.Weight < 0 {
		ins.Weight = 0
	}
	if err := ins.Validate(); err != nil {
		return nil, fmt.Errorf("etcd: instance %s/%s: %w", name, id, err)
	}
	return ins, nil
}

// addressFromEndpoints returns host:port of the first http or https URL.
func addressFromEndpoints(eps []string) string {
	for _, ep := range eps {
		u, err := url.Parse(ep)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			continue
		}
		return u.Host
	}
	return ""
}

// splitKey returns the name and id of an instance key below prefix
// ("<prefix>/<name>/<id>").
func splitKey(prefix, key string) (name, id string, err error) {
	rest, ok := strings.CutPrefix(key, prefix+"/")
	if !ok {
		return "", "", fmt.Errorf("etcd: key %q is not below %q", key, prefix)
	}
	name, id, ok = strings.Cut(rest, "/")
	if !ok || name == "" || id == "" || strings.Contains(id, "/") {
		return "", "", errors.New("etcd: key " + key + " is not <prefix>/<name>/<id>")
	}
	return name, id, nil
}
