package envoy_test

import (
	"strings"
	"testing"
	"time"

	"github.com/gingov/gingov/ratelimit/envoy"
)

func TestParseConfig(t *testing.T) {
	cfg, err := envoy.ParseConfig([]byte(`
domain: edge
descriptors:
  - key: remote_address
    rate_limit: {unit: SECOND, requests_per_unit: 100, burst: 200, name: ip}
  - key: generic_key
    value: checkout
    descriptors:
      - key: user
        rate_limit: {unit: minute, requests_per_unit: 60}
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Domain != "edge" || len(cfg.Descriptors) != 2 || cfg.Descriptors[0].RateLimit.Burst != 200 ||
		cfg.Descriptors[1].Descriptors[0].RateLimit.RequestsPerUnit != 60 {
		t.Fatalf("parsed %+v", cfg)
	}
	if got := envoy.DefaultName("edge", []envoy.Descriptor{cfg.Descriptors[1], cfg.Descriptors[1].Descriptors[0]}); got != "edge/generic_key:checkout/user" {
		t.Fatalf("DefaultName = %q", got)
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{``, "envoy: empty document"},
		{`descriptors: []`, "envoy: domain: empty"},
		{"domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: fortnight, requests_per_unit: 1}",
			`envoy: descriptors[0].rate_limit.unit: "fortnight" is not second, minute, hour or day`},
		{"domain: d\ndescriptors:\n  - value: v",
			"envoy: descriptors[0].key: empty"},
		{"domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: second, requests_per_unit: 0}",
			"envoy: descriptors[0].rate_limit.requests_per_unit: must be > 0, got 0"},
		{"domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: second, requests_per_unit: 2000000}",
			"envoy: descriptors[0].rate_limit.requests_per_unit: 2000000 per second is above one request per 1µs"},
		{"domain: d\ndescriptors:\n  - key: k\n    descriptors:\n      - key: j\n        rate_limit: {unit: second, requests_per_unit: 1, burst: -1}",
			"envoy: descriptors[0].descriptors[0].rate_limit.burst: must be >= 0 (0: requests_per_unit), got -1"},
		{"domain: d\ndescriptors:\n  - key: k\n  - key: k",
			`envoy: descriptors[1]: same key "k" and value "" as descriptors[0]`},
		{"domain: d\ndescriptors:\n  - key: a\n    rate_limit: {unit: second, requests_per_unit: 1, name: x}\n  - key: b\n    rate_limit: {unit: second, requests_per_unit: 2, name: x}",
			`envoy: descriptors[1].rate_limit.name: "x" is also the name of descriptors[0] with another rate`},
		{"domain: d\ndescriptors:\n  - key: k\n    shadow_mode: true", "field shadow_mode not found"},
		{"domain: d\n---\ndomain: e", "more than one YAML document"},
		{"domain: [", "envoy: yaml"},
	} {
		_, err := envoy.ParseConfig([]byte(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseConfig(%q) = %v, want %q", tc.doc, err, tc.want)
		}
	}
	// Same name and rate twice is one limit, not an error.
	if _, err := envoy.ParseConfig([]byte("domain: d\ndescriptors:\n  - key: a\n    rate_limit: {unit: second, requests_per_unit: 1, name: x}\n  - key: b\n    rate_limit: {unit: second, requests_per_unit: 1, name: x}")); err != nil {
		t.Fatal(err)
	}
	deep := envoy.Config{Domain: "d"}
	ds := &deep.Descriptors
	for i := 0; i <= envoy.MaxDepth; i++ {
		*ds = []envoy.Descriptor{{Key: "k"}}
		ds = &(*ds)[0].Descriptors
	}
	if err := deep.Validate(); err == nil || !strings.Contains(err.Error(), "nested deeper than 16") {
		t.Fatalf("deep config: %v", err)
	}
}

func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{
		"domain: d\ndescriptors:\n  - key: k\n    value: v\n    rate_limit: {unit: second, requests_per_unit: 5, burst: 7, name: n}\n    descriptors:\n      - key: j",
		"domain: d",
		"domain: [",
		"descriptors: {key: 1}",
		"domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: day, requests_per_unit: 99999999999}",
		"&a [*a]",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		start := time.Now()
		cfg, err := envoy.ParseConfig(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "envoy: ") {
				t.Fatalf("error without the package prefix: %v", err)
			}
			return
		}
		if cfg.Domain == "" {
			t.Fatal("accepted a config without a domain")
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("parsed config does not validate: %v", err)
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("parsing took %s", time.Since(start))
		}
	})
}
