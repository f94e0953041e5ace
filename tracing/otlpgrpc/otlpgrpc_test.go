package otlpgrpc_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gingov/gingov/tracing/otlpgrpc"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestOptionsValidated(t *testing.T) {
	for _, c := range []struct {
		opts []otlpgrpc.Option
		want string
	}{
		{[]otlpgrpc.Option{otlpgrpc.WithEndpoint("nowhere")}, `otlpgrpc: WithEndpoint: "nowhere" is not host:port or an http(s) URL`},
		{[]otlpgrpc.Option{otlpgrpc.WithEndpoint("127.0.0.1:0")}, `otlpgrpc: WithEndpoint: "127.0.0.1:0" has no valid port`},
		{[]otlpgrpc.Option{otlpgrpc.WithHeaders(map[string]string{"a b": "x"})}, `otlpgrpc: WithHeaders: "a b" is not a header name`},
		{[]otlpgrpc.Option{nil}, "otlpgrpc: option 1 is nil"},
	} {
		exp, err := otlpgrpc.New(t.Context(), c.opts...)
		if err == nil || err.Error() != c.want {
			if exp != nil {
				_ = exp.Shutdown(context.Background())
			}
			t.Errorf("New: %v; want %q", err, c.want)
		}
	}
	// Accepted forms; New does not connect.
	for _, ep := range []string{"127.0.0.1:4317", "http://127.0.0.1:4317", "https://collector.example:443"} {
		exp, err := otlpgrpc.New(t.Context(), otlpgrpc.WithEndpoint(ep), otlpgrpc.WithHeaders(map[string]string{"Authorization": "x"}))
		if err != nil {
			t.Fatalf("%s: %v", ep, err)
		}
		if err := exp.Shutdown(context.Background()); err != nil {
			t.Fatalf("%s: shutdown: %v", ep, err)
		}
	}
}

func TestDefaultTimeout(t *testing.T) {
	if otlpgrpc.DefaultTimeout != 10*time.Second {
		t.Fatalf("DefaultTimeout = %v, want the OTLP default 10s", otlpgrpc.DefaultTimeout)
	}
}
