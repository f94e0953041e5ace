package registry

import (
	"context"
	"log/slog"
	"net/http"
	"testing"

	"github.com/gingov/gingov/logging"
)

type nopDiscovery struct{}

func (nopDiscovery) GetService(context.Context, string) ([]*ServiceInstance, error) { return nil, nil }
func (nopDiscovery) Watch(context.Context, string) (Watcher, error)                 { return nil, nil }

// Every logger of the package defaults to the kit's JSON logger, given no
// logger or a nil one: never slog.Default()'s text.
func TestNilLoggerIsTheKitDefault(t *testing.T) {
	def := logging.Default()
	for _, opts := range [][]ServerOption{nil, {WithLogger(nil)}} {
		s, err := NewServer(http.NotFoundHandler(), "127.0.0.1:0", nil, ServiceInstance{Name: "a"}, opts...)
		if err != nil {
			t.Fatal(err)
		}
		if s.logger != def || s.health.logger != def {
			t.Errorf("Server (%d options): logger %p, health logger %p; want logging.Default() %p", len(opts), s.logger, s.health.logger, def)
		}
	}
	for _, opts := range [][]ResolverOption{nil, {WithLogger(nil)}} {
		r, err := NewResolver(nopDiscovery{}, opts...)
		if err != nil {
			t.Fatal(err)
		}
		if r.cfg.logger != def {
			t.Errorf("Resolver (%d options): not logging.Default()", len(opts))
		}
		_ = r.Close()
	}
	for _, opts := range [][]HealthOption{nil, {WithLogger(nil)}} {
		h, err := NewHealth(opts...)
		if err != nil {
			t.Fatal(err)
		}
		if h.logger != def {
			t.Errorf("Health (%d options): not logging.Default()", len(opts))
		}
	}
	// A logger given is used as is.
	own := slog.New(slog.DiscardHandler)
	s, err := NewServer(http.NotFoundHandler(), "127.0.0.1:0", nil, ServiceInstance{Name: "a"}, WithLogger(own))
	if err != nil || s.logger != own {
		t.Fatalf("WithLogger(own): %v, logger replaced: %v", err, s.logger != own)
	}
}

// One WithLogger configures a Server, a Health and a Resolver; other
// options of one are no options of the others (the compiler rejects them).
func TestWithLoggerIsEveryOption(t *testing.T) {
	var o any = WithLogger(nil)
	_, s := o.(ServerOption)
	_, h := o.(HealthOption)
	_, r := o.(ResolverOption)
	if !s || !h || !r {
		t.Fatalf("WithLogger: ServerOption %v, HealthOption %v, ResolverOption %v", s, h, r)
	}
	for name, o := range map[string]any{
		"WithDrainDelay": WithDrainDelay(0), "WithCheck": WithCheck("a", nil), "WithInitTimeout": WithInitTimeout(1),
	} {
		_, s := o.(ServerOption)
		_, h := o.(HealthOption)
		_, r := o.(ResolverOption)
		if n := btoi(s) + btoi(h) + btoi(r); n != 1 {
			t.Errorf("%s is an option of %d constructors; want 1", name, n)
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
