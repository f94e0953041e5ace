package main

import (
	"bytes"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const sample = `goos: linux
goarch: amd64
pkg: github.com/gingov/gingov/benchmarks
cpu: AMD EPYC
BenchmarkKratos/row=bare/mode=serial/side=gin-2         	     200	      2000 ns/op	    1456 B/op	      15 allocs/op
BenchmarkKratos/row=bare/mode=serial/side=kratos-2      	     200	      5000 ns/op	    2973 B/op	      30 allocs/op
BenchmarkKratos/row=bare/mode=serial/side=gin-2         	     200	      3000 ns/op	    1456 B/op	      15 allocs/op
BenchmarkKratos/row=bare/mode=serial/side=kratos-2      	     200	      4000 ns/op	    2973 B/op	      30 allocs/op
BenchmarkKratos/row=bare/mode=serial/side=gin-2         	     200	      2500 ns/op	    1456 B/op	      15 allocs/op
BenchmarkKratos/row=bare/mode=serial/side=kratos3-2     	     200	      3000 ns/op	    2000 B/op	      25 allocs/op
BenchmarkKratos/row=full/sample=10/mode=serial/side=gin-2 	     200	      6000 ns/op	    4000 B/op	      30 allocs/op
BenchmarkKratos/row=full/sample=10/mode=serial/side=kratos-2 	     200	     20000 ns/op	    6690 B/op	      76 allocs/op
BenchmarkKratos/row=full/sample=10/mode=serial/side=kratos3-2 	     200	     10000 ns/op	    5000 B/op	      68 allocs/op
BenchmarkKratos/row=full-nosentinel/sample=10/mode=serial/side=gin-2 	     200	      5500 ns/op	    3900 B/op	      28 allocs/op
    some_test.go:10: a log line
--- BENCH: something
PASS
ok  	github.com/gingov/gingov/benchmarks	0.249s
BenchmarkE2E/server=gin-bare-2         	       1	     36950 ns/op	       722.0 p50-µs	      7516 p99-µs	     27064 req/s
BenchmarkE2E/server=gin-bare-2         	       1	     30000 ns/op	       700.0 p50-µs	      7000 p99-µs	     33333 req/s
BenchmarkE2E/sample=10/server=gingov-full	1	50000 ns/op	20000 req/s	900 p50-µs	3000 p99-µs	40.5 cpu-µs/op
BenchmarkE2E/sample=10/server=kratos3-full	1	80000 ns/op	12500 req/s	1500 p50-µs	5000 p99-µs	70 cpu-µs/op
`

func TestParse(t *testing.T) {
	s := newSet()
	if err := s.parse(strings.NewReader(sample)); err != nil {
		t.Fatal(err)
	}
	if s.config["cpu"] != "AMD EPYC" || s.config["goos"] != "linux" {
		t.Errorf("config %v", s.config)
	}
	b := s.get("BenchmarkKratos/row=bare/mode=serial/side=gin")
	if b == nil {
		t.Fatalf("bare gin not parsed; have %v", s.order)
	}
	if v, _ := b.median("ns/op"); v != 2500 || b.n("ns/op") != 3 {
		t.Errorf("median %v of %d samples, want 2500 of 3", v, b.n("ns/op"))
	}
	k := s.get("BenchmarkKratos/row=bare/mode=serial/side=kratos")
	if v, _ := k.median("ns/op"); v != 4500 {
		t.Errorf("even median %v, want 4500", v)
	}
	e := s.get("BenchmarkE2E/server=gin-bare")
	if v, _ := e.median("req/s"); v != (27064+33333)/2.0 {
		t.Errorf("req/s median %v", v)
	}
	if v, _ := e.median("p50-µs"); v != 711 {
		t.Errorf("p50 median %v", v)
	}
	ps := s.pairs()
	if len(ps) != 3 || ps[1].row != "full" || ps[1].sample != "10" || ps[1].kratos == nil || ps[1].kratos3 == nil || ps[2].kratos != nil || ps[2].kratos3 != nil {
		t.Errorf("pairs %+v", ps)
	}
}

func TestReport(t *testing.T) {
	s := newSet()
	if err := s.parse(strings.NewReader(sample)); err != nil {
		t.Fatal(err)
	}
	out := string(report(s, "Provisional."))
	for _, want := range []string{
		"Provisional.",
		"Run on: goos linux, goarch amd64, cpu AMD EPYC.",
		"| bare | serial | 2500 | 4500 | 3000 | 0.56x | 0.83x | — | 1456 / 2973 / 2000 | 15 / 30 / 25 | 0.50x | 0.60x | 3 |",
		"| full @10% | serial | 6000 | 20000 | 10000 | 0.30x | 0.60x | +3500 | 4000 / 6690 / 5000 | 30 / 76 / 68 | 0.39x | 0.44x | 1 |",
		"| full-nosentinel @10% | serial | 5500 | — | — | — | — | +3000 | 3900 | 28 | — | — | 1 |",
		"| ns/op gingov / Kratos v2.9.2 @10% | serial | 0.30x | ≤ 0.50x | yes |",
		"| ns/op gingov / Kratos v3.0.0 @10% | serial | 0.60x | ≤ 0.50x | no |",
		"| allocs/op gingov / Kratos v3.0.0 @10% | serial | 0.44x | ≤ 0.50x | yes |",
		"| overhead over bare Gin @10% | serial | 3.50 µs | ≤ 4 µs | yes |",
		"| gin-bare | — | 30199 | — | 711 | 7258 | — | 2 |",
		"| gingov-full | 10% | 20000 | 0.66x | 900 | 3000 | 40.5 | 1 |",
		"| req/s gingov / gin-bare @10% | end to end | 0.66x | ≥ 0.70x | no |",
		"| req/s gingov / kratos3-full @10% | end to end | 1.60x | ≥ 1.50x | yes |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

// With cpu-ns/op in the results, the report has the CPU table and checks
// the goals in CPU time too.
func TestReportCPU(t *testing.T) {
	const in = `BenchmarkKratos/row=bare/mode=serial/side=gin-2 	 200	 3000 ns/op	 2000 cpu-ns/op	 1456 B/op	 15 allocs/op
BenchmarkKratos/row=bare/mode=serial/side=kratos-2 	 200	 5000 ns/op	 4000 cpu-ns/op	 2973 B/op	 30 allocs/op
BenchmarkKratos/row=full/sample=10/mode=serial/side=gin-2 	 200	 9000 ns/op	 7000 cpu-ns/op	 4000 B/op	 30 allocs/op
BenchmarkKratos/row=full/sample=10/mode=serial/side=kratos-2 	 200	 20000 ns/op	 16000 cpu-ns/op	 6690 B/op	 76 allocs/op
BenchmarkKratos/row=full/sample=10/mode=serial/side=kratos3-2 	 200	 15000 ns/op	 12000 cpu-ns/op	 5000 B/op	 68 allocs/op
`
	s := newSet()
	if err := s.parse(strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	out := string(report(s, ""))
	for _, want := range []string{
		"| full @10% | serial | 9000 | 20000 | 15000 | 0.45x | 0.60x | +6000 |",
		"| full @10% | serial | 7000 | 16000 | 12000 | 0.44x | 0.58x | +5000 |",
		"| bare | serial | 2000 | 4000 | — | 0.50x | — | — |",
		"| cpu-ns/op gingov / Kratos v2.9.2 @10% | serial | 0.44x | ≤ 0.50x | yes |",
		"| cpu-ns/op gingov / Kratos v3.0.0 @10% | serial | 0.58x | ≤ 0.50x | no |",
		"| overhead over bare Gin @10% | serial | 6.00 µs | ≤ 4 µs | no |",
		"| CPU overhead over bare Gin @10% | serial | 5.00 µs | ≤ 4 µs | no |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	s = newSet()
	if err := s.parse(strings.NewReader(sample)); err != nil {
		t.Fatal(err)
	}
	if out := string(report(s, "")); strings.Contains(out, "cpu-ns/op") || strings.Contains(out, "CPU overhead") {
		t.Errorf("CPU figures without CPU results:\n%s", out)
	}
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.txt")
	readme := filepath.Join(dir, "README.md")
	svg := filepath.Join(dir, "chart.svg")
	must(t, os.WriteFile(in, []byte(sample), 0o644))
	must(t, os.WriteFile(readme, []byte("# x\n\nbefore\n"+beginMarker+"\nold table\n"+endMarker+"\nafter\n"), 0o644))
	must(t, run(readme, svg, "", []string{in}))
	doc, err := os.ReadFile(readme)
	must(t, err)
	if !bytes.HasPrefix(doc, []byte("# x\n\nbefore\n"+beginMarker+"\n")) || !bytes.HasSuffix(doc, []byte(endMarker+"\nafter\n")) ||
		bytes.Contains(doc, []byte("old table")) || !bytes.Contains(doc, []byte("| bare | serial |")) {
		t.Errorf("README:\n%s", doc)
	}
	// Twice gives the same document: the block is replaced, not appended.
	must(t, run(readme, svg, "", []string{in}))
	again, err := os.ReadFile(readme)
	must(t, err)
	if !bytes.Equal(doc, again) {
		t.Error("second run changed the README")
	}
	img, err := os.ReadFile(svg)
	must(t, err)
	if err := xml.Unmarshal(img, new(struct{})); err != nil {
		t.Fatalf("chart is not XML: %v", err)
	}
	if n := bytes.Count(img, []byte("<rect")); n != 1+3+7 { // background, 3 legend keys, 7 bars
		t.Errorf("%d rects in chart, want 11", n)
	}
	if err := run(filepath.Join(dir, "none.md"), "", "", []string{in}); err == nil {
		t.Error("missing README accepted")
	}
	must(t, os.WriteFile(readme, []byte("no markers\n"), 0o644))
	if err := run(readme, "", "", []string{in}); err == nil || !strings.Contains(err.Error(), "benchreport:begin") {
		t.Errorf("README without markers: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
