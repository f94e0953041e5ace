package envoy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/gingov/gingov/ratelimit"
)

// MaxDepth is the deepest descriptor nesting a configuration may have.
const MaxDepth = 16

// Config is one rate-limit domain, in the YAML format of
// envoyproxy/ratelimit:
//
//	domain: edge
//	descriptors:
//	  - key: remote_address
//	    rate_limit: {unit: second, requests_per_unit: 100, burst: 200, name: ip}
//	  - key: generic_key
//	    value: checkout
//	    descriptors:
//	      - key: user
//	        rate_limit: {unit: minute, requests_per_unit: 60}
//
// gingov adds two optional fields to rate_limit: burst (the bucket size;
// 0 or absent: requests_per_unit) and name (the rule name, see
// [RateLimit.Name]). Other fields of envoyproxy/ratelimit (shadow_mode,
// unlimited, replaces, detailed_metric) are rejected, not ignored.
type Config struct {
	Domain      string       `yaml:"domain"`
	Descriptors []Descriptor `yaml:"descriptors"`
}

// Descriptor matches one entry of a request descriptor: its key, and its
// value when Value is set (an empty Value matches any value). A request
// descriptor whose entries walk a chain of Descriptors down to one with a
// RateLimit is limited by it.
type Descriptor struct {
	Key         string       `yaml:"key"`
	Value       string       `yaml:"value"`
	RateLimit   *RateLimit   `yaml:"rate_limit"`
	Descriptors []Descriptor `yaml:"descriptors"`
}

// RateLimit is a descriptor's limit: RequestsPerUnit per Unit (second,
// minute, hour or day, case-insensitive), with a bucket of Burst requests.
type RateLimit struct {
	Unit            string `yaml:"unit"`
	RequestsPerUnit int    `yaml:"requests_per_unit"`
	// Burst is the bucket size (0: RequestsPerUnit), gingov's addition.
	Burst int `yaml:"burst"`
	// Name is the rule name: the Redis buckets of the limit are those of an
	// in-app ratelimit rule of the same name (ratelimit.Rule.Name) and the
	// same rate. When empty it is DefaultName(domain, path).
	Name string `yaml:"name"`
}

// DefaultName is the rule name of a limit without a name: the domain and
// the chain of descriptors leading to it, each as key or key:value, joined
// by "/" (for example "edge/generic_key:checkout/user").
func DefaultName(domain string, path []Descriptor) string {
	var b strings.Builder
	b.WriteString(domain)
	for _, d := range path {
		b.WriteByte('/')
		b.WriteString(d.Key)
		if d.Value != "" {
			b.WriteByte(':')
			b.WriteString(d.Value)
		}
	}
	return b.String()
}

// ParseConfig reads a YAML configuration and validates it. Errors name the
// field, e.g. `envoy: descriptors[0].rate_limit.unit: "fortnight" is not
// second, minute, hour or day`.
func ParseConfig(data []byte) (Config, error) {
	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return Config{}, errors.New("envoy: empty document")
		}
		return Config{}, fmt.Errorf("envoy: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return Config{}, errors.New("envoy: more than one YAML document (one domain per document)")
	}
	if _, err := compile(cfg); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Validate checks a Config built in code as ParseConfig checks a parsed one.
func (c Config) Validate() error {
	_, err := compile(c)
	return err
}

// rule is one configured limit.
type rule struct {
	name string
	rate ratelimit.Rate
	unit time.Duration
}

// node is a compiled Descriptor.
type node struct {
	exact    map[string]*node // "key\x00value"
	wildcard map[string]*node // key
	rule     *rule
}

func newNode() *node {
	return &node{exact: map[string]*node{}, wildcard: map[string]*node{}}
}

// table is a compiled Config.
type table struct {
	domain string
	root   *node
	rules  map[string]*rule // by name
}

var units = map[string]time.Duration{
	"second": time.Second, "minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour,
}

func compile(c Config) (*table, error) {
	if c.Domain == "" {
		return nil, errors.New("envoy: domain: empty")
	}
	t := &table{domain: c.Domain, rules: map[string]*rule{}}
	where := map[string]string{}
	var walk func(ds []Descriptor, field string, path []Descriptor) (*node, error)
	walk = func(ds []Descriptor, field string, path []Descriptor) (*node, error) {
		if len(path) >= MaxDepth {
			return nil, fmt.Errorf("envoy: %s: nested deeper than %d", field, MaxDepth)
		}
		n := newNode()
		seen := map[string]int{}
		for i, d := range ds {
			f := field + "[" + strconv.Itoa(i) + "]"
			if d.Key == "" {
				return nil, fmt.Errorf("envoy: %s.key: empty", f)
			}
			id := d.Key + "\x00" + d.Value
			if j, dup := seen[id]; dup {
				return nil, fmt.Errorf("envoy: %s: same key %q and value %q as %s[%d]", f, d.Key, d.Value, field, j)
			}
			seen[id] = i
			p := append(path[:len(path):len(path)], d)
			child, err := walk(d.Descriptors, f+".descriptors", p)
			if err != nil {
				return nil, err
			}
			if d.RateLimit != nil {
				r, err := checkLimit(*d.RateLimit, f+".rate_limit", c.Domain, p)
				if err != nil {
					return nil, err
				}
				if prev, ok := t.rules[r.name]; ok {
					if prev.rate != r.rate {
						return nil, fmt.Errorf("envoy: %s.rate_limit.name: %q is also the name of %s with another rate", f, r.name, where[r.name])
					}
					r = prev // one rule, one limiter
				} else {
					t.rules[r.name], where[r.name] = r, f
				}
				child.rule = r
			}
			if d.Value == "" {
				n.wildcard[d.Key] = child
			} else {
				n.exact[id] = child
			}
		}
		return n, nil
	}
	root, err := walk(c.Descriptors, "descriptors", nil)
	if err != nil {
		return nil, err
	}
	t.root = root
	return t, nil
}

func checkLimit(l RateLimit, field, domain string, path []Descriptor) (*rule, error) {
	unit, ok := units[strings.ToLower(l.Unit)]
	if !ok {
		return nil, fmt.Errorf("envoy: %s.unit: %q is not second, minute, hour or day", field, l.Unit)
	}
	if l.RequestsPerUnit <= 0 {
		return nil, fmt.Errorf("envoy: %s.requests_per_unit: must be > 0, got %d", field, l.RequestsPerUnit)
	}
	if l.Burst < 0 {
		return nil, fmt.Errorf("envoy: %s.burst: must be >= 0 (0: requests_per_unit), got %d", field, l.Burst)
	}
	rate := ratelimit.Rate{Limit: l.RequestsPerUnit, Period: unit, Burst: l.Burst}
	if unit/time.Duration(l.RequestsPerUnit) < ratelimit.MinRedisInterval {
		return nil, fmt.Errorf("envoy: %s.requests_per_unit: %d per %s is above one request per %s, the finest a Redis bucket tracks",
			field, l.RequestsPerUnit, strings.ToLower(l.Unit), ratelimit.MinRedisInterval)
	}
	if err := rate.Validate(); err != nil {
		return nil, fmt.Errorf("envoy: %s: %s", field, strings.TrimPrefix(err.Error(), "ratelimit: "))
	}
	name := l.Name
	if name == "" {
		name = DefaultName(domain, path)
	}
	return &rule{name: name, rate: rate, unit: unit}, nil
}
