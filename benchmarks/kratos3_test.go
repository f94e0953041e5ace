package benchmarks

import (
	"reflect"
	"testing"

	aegisrl "github.com/go-kratos/aegis/ratelimit"
	"github.com/go-kratos/aegis/ratelimit/bbr"
	kratelimit3 "github.com/go-kratos/kratos/v3/middleware/ratelimit"
)

// TestBBRV3Layout guards the reinterpretation in bbrV3.Allow: aegis's and
// Kratos v3's DoneFunc must be functions of structs with the same fields,
// and the reinterpreted function must be aegis's own (it ends the request
// BBR counts in flight).
func TestBBRV3Layout(t *testing.T) {
	a, k := reflect.TypeFor[aegisrl.DoneInfo](), reflect.TypeFor[kratelimit3.DoneInfo]()
	if a.Size() != k.Size() || a.NumField() != k.NumField() {
		t.Fatalf("DoneInfo: aegis %v (%d bytes), Kratos v3 %v (%d bytes)", a, a.Size(), k, k.Size())
	}
	for i := range a.NumField() {
		fa, fk := a.Field(i), k.Field(i)
		if fa.Type != fk.Type || fa.Offset != fk.Offset {
			t.Fatalf("DoneInfo field %d: aegis %s %v at %d, Kratos v3 %s %v at %d", i, fa.Name, fa.Type, fa.Offset, fk.Name, fk.Type, fk.Offset)
		}
	}
	l := bbr.NewLimiter(bbr.WithCPUThreshold(1001))
	done, err := bbrV3{l}.Allow()
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Stat().InFlight; got != 1 {
		t.Fatalf("in flight after Allow: %d, want 1", got)
	}
	done(kratelimit3.DoneInfo{})
	if got := l.Stat().InFlight; got != 0 {
		t.Fatalf("in flight after done: %d, want 0", got)
	}
}
