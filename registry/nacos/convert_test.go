package nacos

import (
	"testing"

	"github.com/nacos-group/nacos-sdk-go/v2/model"

	"github.com/gingov/gingov/registry"
)

// Registry weights and Nacos weights map both ways: 100 is the Nacos
// default 1.0, and every weight registered reads back unchanged.
func TestWeightRoundTrip(t *testing.T) {
	for _, w := range []int{1, 2, 33, 99, 100, 101, 150, 1000, 12345, maxWeight} {
		if got := fromNacosWeight(toNacosWeight(w)); got != w {
			t.Errorf("weight %d reads back as %d", w, got)
		}
	}
	if toNacosWeight(registry.DefaultWeight) != 1 {
		t.Errorf("DefaultWeight maps to %v, want the Nacos default 1.0", toNacosWeight(registry.DefaultWeight))
	}
	// Weights set by other clients: rounded, never 0 (which would mean
	// DefaultWeight to the balancer).
	for nw, want := range map[float64]int{1: 100, 0.5: 50, 2.5: 250, 0.004: 1, 0.0001: 1, 10000: maxWeight} {
		if got := fromNacosWeight(nw); got != want {
			t.Errorf("Nacos weight %v reads as %d, want %d", nw, got, want)
		}
	}
}

// convert keeps healthy, enabled instances with a positive weight, lifts
// version and instance_id out of the metadata, and sorts by address.
func TestConvert(t *testing.T) {
	r := &Registry{}
	list := []model.Instance{
		{Ip: "10.0.0.2", Port: 80, Weight: 1, Healthy: true, Enable: true, InstanceId: "10.0.0.2#80#DEFAULT#DEFAULT_GROUP@@svc",
			Metadata: map[string]string{"version": "v2", "kind": "http"}},
		{Ip: "10.0.0.1", Port: 80, Weight: 0.5, Healthy: true, Enable: true,
			Metadata: map[string]string{"version": "v1", "instance_id": "svc-a", "zone": "z1"}},
		{Ip: "10.0.0.3", Port: 80, Weight: 1, Healthy: false, Enable: true},
		{Ip: "10.0.0.4", Port: 80, Weight: 1, Healthy: true, Enable: false},
		{Ip: "10.0.0.5", Port: 80, Weight: 0, Healthy: true, Enable: true},
		{Ip: "::1", Port: 8080, Weight: 3, Healthy: true, Enable: true},
	}
	got := r.convert("svc", list)
	if len(got) != 3 {
		t.Fatalf("convert kept %d instances: %+v", len(got), got)
	}
	a, b, c := got[0], got[1], got[2]
	if a.Address != "10.0.0.1:80" || a.ID != "svc-a" || a.Version != "v1" || a.Weight != 50 || a.Name != "svc" ||
		len(a.Metadata) != 1 || a.Metadata["zone"] != "z1" {
		t.Errorf("first: %+v", a)
	}
	if b.Address != "10.0.0.2:80" || b.ID != "10.0.0.2#80#DEFAULT#DEFAULT_GROUP@@svc" || b.Version != "v2" ||
		b.Weight != 100 || b.Metadata["kind"] != "http" || len(b.Metadata) != 1 {
		t.Errorf("second: %+v", b)
	}
	if c.Address != "[::1]:8080" || c.ID != "svc-::1-8080" || c.Metadata != nil || c.Weight != 300 {
		t.Errorf("third: %+v", c)
	}
	if r.convert("svc", nil) == nil {
		t.Error("convert of no instances is nil, want empty")
	}
}

func TestSameInstances(t *testing.T) {
	x := []*registry.ServiceInstance{{ID: "a", Address: "h:1", Metadata: map[string]string{"k": "v"}}}
	y := []*registry.ServiceInstance{{ID: "a", Address: "h:1", Metadata: map[string]string{"k": "v"}}}
	if !sameInstances(x, y) {
		t.Error("equal sets differ")
	}
	y[0].Metadata["k"] = "w"
	if sameInstances(x, y) {
		t.Error("a metadata change went unseen")
	}
	if sameInstances(x, nil) {
		t.Error("an emptied set went unseen")
	}
}
