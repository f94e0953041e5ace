package eureka

import (
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gingov/gingov/registry"
)

// TestDecodeEurekaApplication: the shapes Eureka servers answer GET
// /apps/{APP} with, and what GetService makes of them.
func TestDecodeEurekaApplication(t *testing.T) {
	cases := []struct {
		name string
		body string
		want []string // ID@Address/Version/Weight/metadata, UP instances only
	}{
		{
			name: "one instance as an object, numbers as strings, @enabled as a boolean",
			body: `{"application":{"name":"ORDERS","instance":{"instanceId":"o-1","app":"ORDERS",
				"hostName":"orders-1.local","ipAddr":"10.0.0.1","vipAddress":"orders","status":"UP",
				"port":{"$":"8080","@enabled":true},"metadata":{"version":"v1","weight":"20","zone":"a"},
				"lastUpdatedTimestamp":1700000000000,"lastDirtyTimestamp":"1700000000000"}}}`,
			want: []string{"o-1@10.0.0.1:8080/v1/20/map[zone:a]"},
		},
		{
			name: "an array, DOWN and OUT_OF_SERVICE left out, empty metadata written as @class",
			body: `{"application":{"name":"ORDERS","instance":[
				{"instanceId":"o-2","app":"ORDERS","ipAddr":"10.0.0.2","vipAddress":"orders","status":"UP",
				 "port":{"$":8081,"@enabled":"true"},"metadata":{"@class":"java.util.Collections$EmptyMap"}},
				{"instanceId":"o-1","app":"ORDERS","ipAddr":"10.0.0.1","vipAddress":"orders","status":"UP",
				 "port":{"$":8080,"@enabled":"true"}},
				{"instanceId":"o-3","app":"ORDERS","ipAddr":"10.0.0.3","status":"DOWN","port":{"$":8080}},
				{"instanceId":"o-4","app":"ORDERS","ipAddr":"10.0.0.4","status":"OUT_OF_SERVICE","port":{"$":8080}}]}}`,
			want: []string{"o-1@10.0.0.1:8080//0/map[]", "o-2@10.0.0.2:8081//0/map[]"},
		},
		{
			name: "hostName when ipAddr is empty, the secure port when the plain one is off, no address left out",
			body: `{"application":{"name":"ORDERS","instance":[
				{"instanceId":"o-1","hostName":"orders.local","status":"UP","port":{"$":80,"@enabled":"false"},
				 "securePort":{"$":8443,"@enabled":"true"},"metadata":{"weight":7,"canary":false}},
				{"instanceId":"o-2","status":"UP","port":{"$":80}},
				{"instanceId":"o-3","ipAddr":"10.0.0.3","status":"UP","port":{"$":0}}]}}`,
			want: []string{"o-1@orders.local:8443//7/map[canary:false scheme:https]"},
		},
		{
			name: "no instances",
			body: `{"application":{"name":"ORDERS","instance":[]}}`,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw, err := decodeApplication([]byte(c.body))
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			var got []string
			for _, s := range upInstances(raw, "orders") {
				if !strings.EqualFold(s.Name, "orders") {
					t.Errorf("Name = %q", s.Name)
				}
				got = append(got, s.ID+"@"+s.Address+"/"+s.Version+"/"+strconv.Itoa(s.Weight)+"/"+eurekaFmtMap(s.Metadata))
			}
			if strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Fatalf("instances:\n got %v\nwant %v", got, c.want)
			}
		})
	}
	for _, bad := range []string{``, `[]`, `{}`, `{"application":{"instance":{"port":{"$":"x"}}}}`, `{"application":{"instance":"x"}}`} {
		if _, err := decodeApplication([]byte(bad)); err == nil {
			t.Errorf("decode(%q) succeeded", bad)
		}
	}
}

// TestEurekaInstanceInfo: the registration body has the shape the Spring
// Cloud server needs, and what it sends comes back through the decoder.
func TestEurekaInstanceInfo(t *testing.T) {
	e, err := New([]string{"http://127.0.0.1:8761/eureka"},
		WithRenewalInterval(1500*time.Millisecond), WithLeaseDuration(4*time.Second),
		WithHealthPath("/health/live"))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	e.now = func() time.Time { return time.UnixMilli(1700000000123) }
	ins := &registry.ServiceInstance{ID: "orders-1", Name: "Orders", Version: "v2", Address: "[::1]:8080", Metadata: map[string]string{"zone": "b"}}
	b, err := json.Marshal(envelope{Instance: e.instanceInfo(ins, OutOfService)})
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	in := doc["instance"]
	want := map[string]any{
		"instanceId": "orders-1", "app": "ORDERS", "vipAddress": "orders", "secureVipAddress": "orders",
		"hostName": "::1", "ipAddr": "::1", "status": "OUT_OF_SERVICE",
		"port":                 map[string]any{"$": float64(8080), "@enabled": "true"},
		"securePort":           map[string]any{"$": float64(443), "@enabled": "false"},
		"homePageUrl":          "http://[::1]:8080/",
		"statusPageUrl":        "http://[::1]:8080/",
		"healthCheckUrl":       "http://[::1]:8080/health/live",
		"dataCenterInfo":       map[string]any{"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo", "name": "MyOwn"},
		"leaseInfo":            map[string]any{"renewalIntervalInSecs": float64(2), "durationInSecs": float64(4)},
		"metadata":             map[string]any{"version": "v2", "weight": "100", "zone": "b"},
		"lastUpdatedTimestamp": "1700000000123", "lastDirtyTimestamp": "1700000000123",
	}
	for k, v := range want {
		if g, _ := json.Marshal(in[k]); string(g) != eurekaJSON(v) {
			t.Errorf("%s = %s, want %s", k, g, eurekaJSON(v))
		}
	}
	for k := range in {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected member %s", k)
		}
	}

	// Round trip through the decoder, as GetService would see it once UP.
	var env struct {
		Instance instance `json:"instance"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatal(err)
	}
	env.Instance.Status = "UP"
	got := upInstances([]instance{env.Instance}, "orders")
	if len(got) != 1 {
		t.Fatalf("decoded %d instances", len(got))
	}
	if s := got[0]; s.ID != "orders-1" || s.Name != "orders" || s.Address != "[::1]:8080" || s.Version != "v2" ||
		s.EffectiveWeight() != 100 || !maps.Equal(s.Metadata, map[string]string{"zone": "b"}) {
		t.Fatalf("round trip = %+v", s)
	}
}

// FuzzDecodeEurekaApplication: any answer decodes or fails cleanly, and
// every instance GetService would return has a valid address.
func FuzzDecodeEurekaApplication(f *testing.F) {
	f.Add(`{"application":{"name":"A","instance":{"instanceId":"a","ipAddr":"1.2.3.4","status":"UP","port":{"$":"80","@enabled":true}}}}`)
	f.Add(`{"application":{"instance":[{"hostName":"h","status":"UP","port":8080,"metadata":{"weight":"-3","@class":"x","n":null}}]}}`)
	f.Add(`{"application":{"instance":[{"status":"UP","securePort":{"$":70000,"@enabled":"true"}}]}}`)
	f.Fuzz(func(t *testing.T, body string) {
		raw, err := decodeApplication([]byte(body))
		if err != nil {
			return
		}
		for _, s := range upInstances(raw, "a") {
			if err := s.Validate(); err != nil && !strings.Contains(err.Error(), "reachable host") {
				t.Fatalf("instance %+v: %v", s, err)
			}
			if s.Weight < 0 {
				t.Fatalf("negative weight %d", s.Weight)
			}
		}
	})
}

func eurekaJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func eurekaFmtMap(m map[string]string) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + ":" + m[k]
	}
	return "map[" + strings.Join(parts, " ") + "]"
}
