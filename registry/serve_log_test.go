package registry_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gingov/gingov/registry"
)

// Serve without a logger writes the kit's JSON lines to stderr (the
// default logger's output), not slog.Default()'s text. The server runs in
// a child process so that its stderr can be read whole.
func TestServeLogsJSONByDefault(t *testing.T) {
	if os.Getenv("GINGOV_SERVE_CHILD") == "1" {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		err := registry.Serve(ctx, http.NotFoundHandler(), "127.0.0.1:0", nil,
			registry.ServiceInstance{Name: "orders"}, registry.WithDrainDelay(0))
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeLogsJSONByDefault$", "-test.count=1")
	cmd.Env = append(os.Environ(), "GINGOV_SERVE_CHILD=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("child: %v\n%s", err, stderr.String())
	}
	var msgs []string
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		var rec struct {
			Level   string `json:"level"`
			Msg     string `json:"msg"`
			Service string `json:"service"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("stderr line is not JSON: %q\n%s", line, stderr.String())
		}
		if rec.Service != "orders" {
			t.Errorf("line without the service: %q", line)
		}
		msgs = append(msgs, rec.Msg)
	}
	if got := strings.Join(msgs, ","); got != "registry: serving,registry: draining,registry: stopped" {
		t.Fatalf("messages %q; stderr:\n%s", got, stderr.String())
	}
}
