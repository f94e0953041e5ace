package testenv

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Etcd is a single-member etcd server started for a test, with its client
// and peer URLs on 127.0.0.1 only.
type Etcd struct {
	*Process
	Endpoint   string // client URL, http://127.0.0.1:port (what clientv3 takes)
	ClientAddr string // host:port of the client URL
	ClientPort int
	PeerPort   int
	Dir        string // data dir; keys and leases survive Restart, not RestartWiped
}

// etcdHTTP talks to the test servers' HTTP endpoints (/health, the v3 JSON
// gateway). Keep-alives are off so that no idle connection goroutine
// outlives a test (goleak).
var etcdHTTP = &http.Client{
	Timeout:   10 * time.Second,
	Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
}

// StartEtcd starts etcd on free loopback client and peer ports with a
// fresh data dir, and waits until GET /health on the client URL reports a
// healthy member (a leader elected). Heartbeat and election timeouts are
// short (10 ms, 100 ms) so that a start or restart takes well under a
// second. Extra args are appended to the command line. The server is
// stopped at test cleanup.
func StartEtcd(t testing.TB, extra ...string) *Etcd {
	t.Helper()
	bin := Require(t, "etcd", "apt-get install -y etcd-server")
	var lastErr error
	for range 3 {
		clientPort, peerPort := FreePort(t), FreePort(t)
		if clientPort == peerPort {
			continue
		}
		work := t.TempDir()
		dir := filepath.Join(work, "data")
		e := &Etcd{
			ClientAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(clientPort)),
			ClientPort: clientPort,
			PeerPort:   peerPort,
			Dir:        dir,
		}
		e.Endpoint = "http://" + e.ClientAddr
		peer := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(peerPort))
		args := append([]string{
			"--name", "gingov-test",
			"--data-dir", dir,
			"--listen-client-urls", e.Endpoint,
			"--advertise-client-urls", e.Endpoint,
			"--listen-peer-urls", peer,
			"--initial-advertise-peer-urls", peer,
			"--initial-cluster", "gingov-test=" + peer,
			"--initial-cluster-state", "new",
			"--initial-cluster-token", "gingov-test-" + strconv.Itoa(peerPort),
			"--heartbeat-interval", "10",
			"--election-timeout", "100",
			"--logger", "zap",
			"--log-outputs", "stderr",
			"--log-level", "warn",
		}, extra...)
		e.Process = Start(t, bin, args, nil, work)
		if lastErr = e.waitHealthy(20 * time.Second); lastErr == nil {
			return e
		}
		e.Stop()
		if !addrInUse(e.Output()) {
			break
		}
	}
	t.Fatalf("testenv: etcd did not start: %v", lastErr)
	return nil
}

// Restart runs etcd again with the same command line, so on the same ports
// and with the same data dir, as a supervisor would after a crash, and
// waits until it is healthy. Keys survive; a lease survives too unless its
// TTL ran out meanwhile (etcd also extends the leases it finds at start by
// an election timeout). A server still running is stopped first (a paused
// one is resumed so that it can). e.Process is the new process from then
// on, stopped at cleanup as the first one was. Restart must not run
// concurrently with other methods of e.
//
// The ports may be taken by someone else meanwhile; Restart retries the
// bind for a few seconds, then fails the test.
func (e *Etcd) Restart(t testing.TB) {
	t.Helper()
	e.restart(t, false)
}

// RestartWiped is Restart with the data dir emptied first: etcd comes back
// as a new cluster that has no keys and no leases, as after losing its
// disk.
func (e *Etcd) RestartWiped(t testing.TB) {
	t.Helper()
	e.restart(t, true)
}

func (e *Etcd) restart(t testing.TB, wipe bool) {
	t.Helper()
	e.Resume()
	e.Stop()
	if wipe {
		if err := os.RemoveAll(e.Dir); err != nil {
			t.Fatalf("testenv: wipe etcd data dir: %v", err)
		}
	}
	old := e.cmd
	var lastErr error
	deadline := time.Now().Add(5 * time.Second)
	for {
		// old.Env is the whole environment the first process got; as the
		// extra env of Start it overrides each variable with the same value.
		e.Process = Start(t, old.Path, old.Args[1:], old.Env, old.Dir)
		if lastErr = e.waitHealthy(20 * time.Second); lastErr == nil {
			return
		}
		e.Stop()
		if !addrInUse(e.Output()) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("testenv: etcd did not restart on %s: %v", e.ClientAddr, lastErr)
}

func addrInUse(out string) bool {
	return strings.Contains(strings.ToLower(out), "address already in use")
}

func (e *Etcd) waitHealthy(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if e.Exited() {
			return fmt.Errorf("etcd exited: %s", e.Output())
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err = e.Health(ctx)
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	return err
}

// Health asks GET /health on the client URL; nil means the member is
// healthy (it has a leader and no alarm).
func (e *Etcd) Health(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.Endpoint+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := etcdHTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var h struct {
		Health string `json:"health"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return fmt.Errorf("GET /health: %s: %w", resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK || h.Health != "true" {
		return fmt.Errorf("GET /health: %s, health %q", resp.Status, h.Health)
	}
	return nil
}

// EtcdKV is a key as etcd's v3 JSON gateway reports it.
type EtcdKV struct {
	Value string // decoded
	Lease int64  // 0 when the key has no lease
}

// Range reads every key under prefix through etcd's v3 JSON gateway
// (POST /v3/kv/range), independently of any Go client, keyed by the key.
// An empty prefix reads every key.
func (e *Etcd) Range(ctx context.Context, prefix string) (map[string]EtcdKV, error) {
	key := prefix
	if key == "" {
		key = "\x00" // with range end "\x00": every key
	}
	body := map[string]string{
		"key":       base64.StdEncoding.EncodeToString([]byte(key)),
		"range_end": base64.StdEncoding.EncodeToString(prefixEnd(prefix)),
	}
	var out struct {
		Kvs []struct {
			Key   []byte `json:"key"`   // base64 in JSON
			Value []byte `json:"value"` // base64 in JSON
			Lease string `json:"lease"` // int64 as a JSON string
		} `json:"kvs"`
	}
	if err := e.gateway(ctx, "/v3/kv/range", body, &out); err != nil {
		return nil, err
	}
	kvs := make(map[string]EtcdKV, len(out.Kvs))
	for _, kv := range out.Kvs {
		lease, _ := strconv.ParseInt(kv.Lease, 10, 64)
		kvs[string(kv.Key)] = EtcdKV{Value: string(kv.Value), Lease: lease}
	}
	return kvs, nil
}

// Leases lists the IDs of the leases etcd holds, through the v3 JSON
// gateway (POST /v3/lease/leases).
func (e *Etcd) Leases(ctx context.Context) ([]int64, error) {
	var out struct {
		Leases []struct {
			ID string `json:"ID"` // int64 as a JSON string
		} `json:"leases"`
	}
	if err := e.gateway(ctx, "/v3/lease/leases", map[string]string{}, &out); err != nil {
		return nil, err
	}
	ids := make([]int64, 0, len(out.Leases))
	for _, l := range out.Leases {
		id, err := strconv.ParseInt(l.ID, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("POST /v3/lease/leases: lease ID %q: %w", l.ID, err)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// Put writes key = value (without a lease) through the v3 JSON gateway
// (POST /v3/kv/put), failing the test on error.
func (e *Etcd) Put(t testing.TB, key, value string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	body := map[string]string{
		"key":   base64.StdEncoding.EncodeToString([]byte(key)),
		"value": base64.StdEncoding.EncodeToString([]byte(value)),
	}
	if err := e.gateway(ctx, "/v3/kv/put", body, nil); err != nil {
		t.Fatalf("testenv: etcd put %q: %v", key, err)
	}
}

func (e *Etcd) gateway(ctx context.Context, path string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.Endpoint+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := etcdHTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s %s", path, resp.Status, bytes.TrimSpace(data))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("POST %s: %w", path, err)
	}
	return nil
}

// prefixEnd is the range end that selects every key starting with prefix
// (etcd's convention: the prefix with its last byte below 0xff incremented).
func prefixEnd(prefix string) []byte {
	end := []byte(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return []byte{0} // every key
}
