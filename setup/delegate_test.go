package setup_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/gingov/gingov/internal/testenv"
)

// startRatelimitService builds gingov-ratelimit (ratelimit/envoy's
// command) and runs it on rdb with the configuration doc; it returns the
// gRPC port.
func startRatelimitService(t *testing.T, redisAddr, doc string) int {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "gingov-ratelimit")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/gingov-ratelimit")
	cmd.Dir = "../ratelimit/envoy"
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build gingov-ratelimit: %v\n%s", err, out)
	}
	conf := filepath.Join(dir, "ratelimit.yaml")
	if err := os.WriteFile(conf, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	grpcPort, httpPort := testenv.FreePort(t), testenv.FreePort(t)
	p := testenv.Start(t, bin, []string{"-redis", redisAddr, "-config", conf, "-deadline", "2s",
		"-grpc", "127.0.0.1:" + strconv.Itoa(grpcPort), "-http", "127.0.0.1:" + strconv.Itoa(httpPort)}, nil, dir)
	p.WaitReady(t, 20*time.Second, func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(httpPort)+"/healthz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return errStatus(resp.StatusCode)
		}
		return nil
	})
	return grpcPort
}

type errStatus int

func (e errStatus) Error() string { return "status " + strconv.Itoa(int(e)) }

// TestMeshDelegatedRuleOneBudget: docs/mesh.md's migration with real
// servers. One gingov.yaml rule, enforce: sidecar, 4 per minute per user;
// an un-meshed instance enforces it in the app on Redis; a meshed instance
// (the same file plus mesh: sidecar) leaves it to Envoy (docs/mesh/envoy.yaml),
// whose rate-limit filter asks gingov-ratelimit on the same Redis. The
// two share one budget, and refuse with the same envelope.
func TestMeshDelegatedRuleOneBudget(t *testing.T) {
	testenv.EnvoyBinary(t)
	rds := testenv.StartRedis(t)
	rlPort := startRatelimitService(t, rds.Addr,
		"domain: app\ndescriptors:\n  - key: user\n    rate_limit: {unit: minute, requests_per_unit: 4, name: user}\n")

	yaml := "service: {name: orders}\nratelimit:\n  redis: {addrs: [\"" + rds.Addr + "\"], deadline: 2s}\n" +
		"  rules: [{name: user, by: \"header:X-User-Id\", limit: 4, period: 1m, enforce: sidecar}]\n"
	app := func(doc string) int {
		r, _, _ := use(t, mustParse(t, doc)) // serves GET /orders/:id
		return serve(t, r)
	}
	plain := "http://127.0.0.1:" + strconv.Itoa(app(yaml))
	meshedApp := app(yaml + "mesh: sidecar\n")
	admin, ingress := testenv.FreePort(t), testenv.FreePort(t)
	testenv.StartEnvoy(t, testenv.ExpandEnvoyConfig(t, "../docs/mesh/envoy.yaml", map[string]string{
		"ADMIN_PORT": strconv.Itoa(admin), "INGRESS_PORT": strconv.Itoa(ingress), "APP_PORT": strconv.Itoa(meshedApp),
		"EGRESS_PORT": strconv.Itoa(testenv.FreePort(t)), "UPSTREAM_ADDR": "127.0.0.1", "UPSTREAM_PORT": strconv.Itoa(testenv.FreePort(t)),
		"RATELIMIT_PORT": strconv.Itoa(rlPort), "RATELIMIT_TIMEOUT": "5s",
		"ZIPKIN_PORT": strconv.Itoa(testenv.FreePort(t)), "TRACE_SAMPLING": "0",
	}), admin)
	meshed := "http://127.0.0.1:" + strconv.Itoa(ingress)

	type envelope struct {
		Code                      int
		Reason, Message, Solution string
	}
	send := func(base, user string) (int, envelope) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/orders/1", nil)
		req.Header.Set("X-User-Id", user)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var e envelope
		if resp.StatusCode != 200 {
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("%s: %d %s: not an envelope", base, resp.StatusCode, body)
			}
		}
		return resp.StatusCode, e
	}
	// alice: 4 per minute across both instances.
	var got []int
	for _, base := range []string{meshed, plain, meshed, plain} {
		code, _ := send(base, "alice")
		got = append(got, code)
	}
	codeM, envM := send(meshed, "alice")
	codeP, envP := send(plain, "alice")
	t.Logf("alice: %v, then through Envoy %d %+v, in the app %d %+v", got, codeM, envM, codeP, envP)
	for i, c := range got {
		if c != 200 {
			t.Fatalf("request %d of 4: %d", i+1, c)
		}
	}
	if codeM != 429 || codeP != 429 {
		t.Fatalf("the fifth and sixth requests: %d (through Envoy), %d (in the app): one budget not shared", codeM, codeP)
	}
	if envM != envP || envM.Reason != "RATE_LIMITED" {
		t.Fatalf("refusals differ: Envoy's %+v, the app's %+v", envM, envP)
	}
	// The meshed app itself does not enforce the rule: Envoy does.
	direct := "http://127.0.0.1:" + strconv.Itoa(meshedApp)
	if code, _ := send(direct, "alice"); code != 200 {
		t.Fatalf("the meshed app enforced a rule left to the sidecar: %d", code)
	}
}
