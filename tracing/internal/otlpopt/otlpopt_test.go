package otlpopt

import "testing"

func TestCheckEndpoint(t *testing.T) {
	for ep, ok := range map[string]bool{
		"127.0.0.1:4318": true, "localhost:4317": true, "[::1]:4318": true,
		"http://127.0.0.1:4318/custom/traces": true, "https://collector.example:443": true,
		"nowhere": false, ":4318": false, "127.0.0.1:99999": false, "127.0.0.1:x": false,
		"ftp://127.0.0.1:4318": false, "http://": false,
	} {
		if err := CheckEndpoint(ep); (err == nil) != ok {
			t.Errorf("CheckEndpoint(%q) = %v; want ok %v", ep, err, ok)
		}
	}
	if err := CheckHeaders(map[string]string{"Authorization": "x", "bad name": "y"}); err == nil {
		t.Error("a header name with a space was accepted")
	}
}

type testOption interface{ apply(*Config) }

type testFunc func(*Config)

func (f testFunc) apply(c *Config) { f(c) }

func TestApply(t *testing.T) {
	cfg, err := Apply("p", []testOption{
		testFunc(Endpoint("http://127.0.0.1:4318")), testFunc(Insecure),
		testFunc(Headers(map[string]string{"A": "1", "B": "2"})), testFunc(Headers(map[string]string{"B": "3"})),
	}, testOption.apply)
	if err != nil || cfg.Endpoint != "http://127.0.0.1:4318" || !cfg.Insecure ||
		len(cfg.Headers) != 2 || cfg.Headers["A"] != "1" || cfg.Headers["B"] != "3" {
		t.Fatalf("Apply = %+v, %v", cfg, err)
	}
	if cfg, err := Apply[testOption]("p", nil, testOption.apply); err != nil || cfg.Endpoint != "" || cfg.Insecure || cfg.Headers != nil {
		t.Fatalf("no options: %+v, %v", cfg, err)
	}
	for want, opts := range map[string][]testOption{
		"p: option 2 is nil": {testFunc(Insecure), nil},
		`p: WithEndpoint: "nowhere" is not host:port or an http(s) URL`: {testFunc(Endpoint("nowhere"))},
		`p: WithHeaders: "a b" is not a header name`:                    {testFunc(Headers(map[string]string{"a b": "x"}))},
	} {
		if _, err := Apply("p", opts, testOption.apply); err == nil || err.Error() != want {
			t.Errorf("Apply: %v; want %q", err, want)
		}
	}
}
