package setup_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gingov/gingov/logging"
)

// log.max_field_bytes and log.max_line_bytes reach the access log; a
// panic's access line and response-size metric count the envelope in the
// chain setup builds.
func TestUseLogBoundsAndPanicBytes(t *testing.T) {
	cfg := mustParse(t, "service: {name: orders}\nlog: {max_field_bytes: 64, max_line_bytes: 1024}\n")
	r, ch, logs := use(t, cfg)
	id := strings.Repeat("9", 100<<10)
	if w := get(r, "/orders/"+id); w.Code != 200 {
		t.Fatalf("long path: %d", w.Code)
	}
	panicAnswer := get(r, "/panic")
	if panicAnswer.Code != 500 {
		t.Fatalf("panic: %d", panicAnswer.Code)
	}
	var orders, panics map[string]any
	for _, l := range strings.SplitAfter(logs.String(), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %.200s", l)
		}
		if m["msg"] != "request" {
			continue
		}
		if len(l) > 1024 {
			t.Errorf("access line of %d bytes, bound 1024", len(l))
		}
		switch m["route"] {
		case "/orders/:id":
			orders = m
		case "/panic":
			panics = m
		}
	}
	if p, _ := orders["path"].(string); len(p) > 64 || !strings.HasSuffix(p, logging.TruncatedMark) || orders["path_len"] != float64(len("/orders/"+id)) {
		t.Errorf("long path line: %v", orders)
	}
	if panics["bytes"] != float64(panicAnswer.Body.Len()) || panics["status"] != 500.0 {
		t.Errorf("panic line %v, answer of %d bytes", panics, panicAnswer.Body.Len())
	}
	if sum := responseSizeSum(t, ch.Registry, "/panic"); sum != float64(panicAnswer.Body.Len()) {
		t.Errorf("response size of the panic %v, answer of %d bytes", sum, panicAnswer.Body.Len())
	}
}

func responseSizeSum(t *testing.T, reg *prometheus.Registry, route string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "http_server_response_size_bytes" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "route" && lp.GetValue() == route {
					return m.GetHistogram().GetSampleSum()
				}
			}
		}
	}
	t.Fatalf("no response-size series for %s", route)
	return 0
}
