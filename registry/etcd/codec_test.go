package etcd

import (
	"strings"
	"testing"
	"time"

	"github.com/gingov/gingov/registry"
)

func TestCodecRoundTrip(t *testing.T) {
	in := &registry.ServiceInstance{
		ID: "orders-1", Name: "orders", Version: "v2", Address: "10.0.0.7:8080",
		Metadata: map[string]string{"zone": "a"}, Weight: 7,
	}
	v, err := encode(in)
	if err != nil {
		t.Fatal(err)
	}
	if in.Metadata["version"] != "" {
		t.Fatal("encode changed the caller's metadata")
	}
	out, err := decode("orders", "orders-1", []byte(v))
	if err != nil {
		t.Fatal(err)
	}
	if out.ID != in.ID || out.Name != in.Name || out.Version != "v2" || out.Address != in.Address ||
		out.Weight != 7 || out.Metadata["zone"] != "a" || out.Metadata["version"] != "v2" {
		t.Fatalf("decode(encode(x)) = %+v", out)
	}
}

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		doc           string
		wantErr       string
		id, addr, ver string
	}{
		// Fields left out come from the key; the address from a URL.
		{doc: `{"endpoints":["grpc://10.0.0.1:9000","http://10.0.0.1:8080"],"metadata":{"version":"v3"}}`,
			id: "k-id", addr: "10.0.0.1:8080", ver: "v3"},
		{doc: `{"id":"x","address":"127.0.0.1:80","weight":-4}`, id: "x", addr: "127.0.0.1:80"},
		{doc: `not json`, wantErr: "decode instance"},
		{doc: `{"endpoints":["grpc://10.0.0.1:9000"]}`, wantErr: "Address"},
		{doc: `{"address":"0.0.0.0:80"}`, wantErr: "reachable host"},
	} {
		got, err := decode("orders", "k-id", []byte(tc.doc))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(err.Error(), "etcd: ") {
				t.Errorf("decode(%s) = %v, %v; want error naming %s", tc.doc, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got.ID != tc.id || got.Address != tc.addr || got.Version != tc.ver || got.Name != "orders" || got.Weight < 0 {
			t.Errorf("decode(%s) = %+v, %v", tc.doc, got, err)
		}
	}
}

func TestSplitKey(t *testing.T) {
	if n, id, err := splitKey("/p", "/p/orders/o-1"); err != nil || n != "orders" || id != "o-1" {
		t.Fatalf("splitKey = %q %q %v", n, id, err)
	}
	for _, k := range []string{"/q/orders/o-1", "/p/orders", "/p/orders/", "/p//o-1", "/p/orders/o/1"} {
		if _, _, err := splitKey("/p", k); err == nil {
			t.Errorf("splitKey(%q) succeeded", k)
		}
	}
}

// FuzzDecode: whatever etcd holds under the prefix, decoding never panics
// and a decoded instance is valid.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"id":"a","name":"orders","address":"127.0.0.1:1","metadata":{"k":"v"},"weight":3}`))
	f.Add([]byte(`{"endpoints":["http://[::1]:8080"]}`))
	f.Add([]byte(`{"address":"x"}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		ins, err := decode("orders", "id", doc)
		if err != nil {
			return
		}
		if verr := ins.Validate(); verr != nil || ins.ID == "" || ins.Name == "" {
			t.Fatalf("decode(%q) = %+v, invalid: %v", doc, ins, verr)
		}
	})
}

func TestBackoff(t *testing.T) {
	r := newRegistry(nil, false, config{ttl: 15e9})
	if r.retry.Max != MaxBackoff || r.retry.Min != 100*time.Millisecond {
		t.Fatalf("backoff for a 15 s TTL = %+v; want 100ms up to %v", r.retry, MaxBackoff)
	}
	if r.ttlSeconds != 15 {
		t.Fatalf("ttlSeconds = %d", r.ttlSeconds)
	}
	for attempt := range 100 {
		d := r.retry.Delay(attempt)
		want := min(MaxBackoff, 100*time.Millisecond<<min(attempt, 20))
		if d < want/2 || d > want {
			t.Fatalf("backoff(%d) = %v; want in [%v, %v]", attempt, d, want/2, want)
		}
	}
	short := newRegistry(nil, false, config{ttl: 2500e6})
	if short.retry.Max != time.Duration(2500e6)/3 || short.ttlSeconds != 3 {
		t.Fatalf("2.5 s TTL: cap %v, %d s; want TTL/3 and 3 s", short.retry.Max, short.ttlSeconds)
	}
}
