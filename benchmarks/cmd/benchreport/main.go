// Command benchreport turns the output of the benchmarks module's
// `go test -bench` runs into the tables of benchmarks/README.md and the
// bar chart benchmarks/chart.svg. It takes the median of each benchmark's
// samples (every -count run is one sample) and writes:
//
//   - between the README's `<!-- benchreport:begin -->` and
//     `<!-- benchreport:end -->` lines: the in-process table of gingov,
//     Kratos v2.9.2 and Kratos v3.0.0 (BenchmarkKratos, sides gin, kratos
//     and kratos3), the end-to-end table (BenchmarkE2E: cmd/loadgen's lines
//     against cmd/benchserver), and the goals of the comparison checked
//     against both;
//   - the SVG: ns/op of each row, gingov beside both Kratos versions.
//
// Usage:
//
//	benchreport -readme README.md -svg chart.svg [-note text] results/kratos.txt results/e2e.txt
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
)

const (
	beginMarker = "<!-- benchreport:begin -->"
	endMarker   = "<!-- benchreport:end -->"
)

func main() {
	readme := flag.String("readme", "README.md", "markdown file whose marked block is replaced")
	svg := flag.String("svg", "chart.svg", "SVG chart to write (empty: none)")
	note := flag.String("note", "", "text put first in the generated block (machine, run, provisional…)")
	flag.Parse()
	if err := run(*readme, *svg, *note, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

func run(readme, svg, note string, inputs []string) error {
	if len(inputs) == 0 {
		return errors.New("no input files")
	}
	set := newSet()
	for _, in := range inputs {
		f, err := os.Open(in)
		if err != nil {
			return err
		}
		err = set.parse(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", in, err)
		}
	}
	block := report(set, note)
	doc, err := os.ReadFile(readme)
	if err != nil {
		return err
	}
	out, err := replaceBlock(doc, block)
	if err != nil {
		return fmt.Errorf("%s: %w", readme, err)
	}
	if err := os.WriteFile(readme, out, 0o644); err != nil {
		return err
	}
	if svg != "" {
		return os.WriteFile(svg, chart(set), 0o644)
	}
	return nil
}

// bench is one benchmark's samples per unit ("ns/op", "B/op", "req/s"…).
type bench struct {
	name    string
	samples map[string][]float64
}

func (b *bench) median(unit string) (float64, bool) {
	s := slices.Clone(b.samples[unit])
	if len(s) == 0 {
		return 0, false
	}
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2], true
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2, true
}

func (b *bench) n(unit string) int { return len(b.samples[unit]) }

// set holds the benchmarks parsed, in order of first appearance, and the
// configuration lines (goos, goarch, cpu, pkg) seen.
type set struct {
	order  []string
	byName map[string]*bench
	config map[string]string
}

func newSet() *set { return &set{byName: map[string]*bench{}, config: map[string]string{}} }

func (s *set) get(name string) *bench { return s.byName[name] }

// parse reads `go test -bench` output: result lines
//
//	BenchmarkName-8   1000   1234 ns/op   56 B/op   2 allocs/op   9.5 req/s
//
// (the -N GOMAXPROCS suffix is dropped) and "key: value" configuration
// lines; anything else is skipped.
func (s *set) parse(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if k, v, ok := strings.Cut(text, ": "); ok && !strings.ContainsAny(k, " \t") && !strings.HasPrefix(k, "Benchmark") {
			s.config[k] = strings.TrimSpace(v)
			continue
		}
		if !strings.HasPrefix(text, "Benchmark") {
			continue
		}
		f := strings.Fields(text)
		if len(f) < 4 || len(f)%2 != 0 {
			continue // a benchmark's own log output, or a name line without results
		}
		if _, err := strconv.ParseInt(f[1], 10, 64); err != nil {
			continue
		}
		name := trimProcs(f[0])
		b := s.byName[name]
		if b == nil {
			b = &bench{name: name, samples: map[string][]float64{}}
			s.byName[name] = b
			s.order = append(s.order, name)
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return fmt.Errorf("line %d: value %q: %w", line, f[i], err)
			}
			b.samples[f[i+1]] = append(b.samples[f[i+1]], v)
		}
	}
	return sc.Err()
}

// trimProcs drops the -N GOMAXPROCS suffix go test appends to names.
func trimProcs(name string) string {
	i := strings.LastIndexByte(name, '-')
	if i < 0 || i == len(name)-1 {
		return name
	}
	if _, err := strconv.Atoi(name[i+1:]); err != nil {
		return name
	}
	return name[:i]
}

// key returns the value of key=value element k of a benchmark name.
func key(name, k string) string {
	for _, part := range strings.Split(name, "/") {
		if v, ok := strings.CutPrefix(part, k+"="); ok {
			return v
		}
	}
	return ""
}

// pair is one row/sampling/mode of BenchmarkKratos with its sides:
// gingov (side=gin), Kratos v2.9.2 (side=kratos), Kratos v3.0.0
// (side=kratos3).
type pair struct {
	row, sample, mode    string
	gin, kratos, kratos3 *bench
}

func (p pair) label() string {
	if p.sample == "" {
		return p.row
	}
	return p.row + " @" + p.sample + "%"
}

// pairs groups BenchmarkKratos results by row, sampling and mode, in the
// order they ran.
func (s *set) pairs() []pair {
	var out []pair
	idx := map[string]int{}
	for _, name := range s.order {
		if !strings.HasPrefix(name, "BenchmarkKratos/") {
			continue
		}
		id := key(name, "row") + "|" + key(name, "sample") + "|" + key(name, "mode")
		i, ok := idx[id]
		if !ok {
			i = len(out)
			idx[id] = i
			out = append(out, pair{row: key(name, "row"), sample: key(name, "sample"), mode: key(name, "mode")})
		}
		switch key(name, "side") {
		case "gin":
			out[i].gin = s.byName[name]
		case "kratos":
			out[i].kratos = s.byName[name]
		case "kratos3":
			out[i].kratos3 = s.byName[name]
		}
	}
	return out
}

// bare returns the bare-Gin benchmark of a mode.
func (s *set) bare(mode string) *bench {
	return s.get("BenchmarkKratos/row=bare/mode=" + mode + "/side=gin")
}

func report(s *set, note string) []byte {
	var w bytes.Buffer
	if note != "" {
		fmt.Fprintf(&w, "%s\n\n", note)
	}
	var cfg []string
	for _, k := range []string{"goos", "goarch", "cpu"} {
		if v := s.config[k]; v != "" {
			cfg = append(cfg, k+" "+v)
		}
	}
	if len(cfg) > 0 {
		fmt.Fprintf(&w, "Run on: %s.\n\n", strings.Join(cfg, ", "))
	}
	ps := s.pairs()
	if len(ps) > 0 {
		w.WriteString("#### In process (BenchmarkKratos; medians)\n\n")
		w.WriteString("gingov = Gin with gingov's middlewares (bare Gin in row `bare`); v2 = Kratos v2.9.2, v3 = Kratos v3.0.0; " +
			"ratio = gingov / Kratos; Δ Gin = gingov ns/op minus bare Gin's in the same mode; B/op and allocs/op are gingov / v2 / v3.\n\n")
		w.WriteString("| row | mode | gingov ns/op | v2 ns/op | v3 ns/op | ratio v2 | ratio v3 | Δ Gin ns | B/op | allocs/op | allocs ratio v2 | allocs ratio v3 | n |\n")
		w.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, p := range ps {
			g, k, k3 := p.gin, p.kratos, p.kratos3
			n := 0
			if g != nil {
				n = g.n("ns/op")
			}
			fmt.Fprintf(&w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d |\n",
				p.label(), p.mode,
				val(g, "ns/op"), val(k, "ns/op"), val(k3, "ns/op"), ratio(g, k, "ns/op"), ratio(g, k3, "ns/op"), delta(g, s.bare(p.mode)),
				vals(g, k, k3, "B/op"), vals(g, k, k3, "allocs/op"), ratio(g, k, "allocs/op"), ratio(g, k3, "allocs/op"), n)
		}
		w.WriteString("\n")
		cpuTable(&w, s, ps)
	}
	e2e(&w, s)
	goals(&w, s, ps)
	return w.Bytes()
}

// cpuUnit is the CPU time per request internal/benchping reports: the
// process's CPU time (GC and background goroutines included, time spent
// waiting for a core not) over the iterations.
const cpuUnit = "cpu-ns/op"

// cpuTable is the in-process table in CPU time, when the results have it.
func cpuTable(w *bytes.Buffer, s *set, ps []pair) {
	var have bool
	for _, p := range ps {
		if p.gin != nil && p.gin.n(cpuUnit) > 0 {
			have = true
		}
	}
	if !have {
		return
	}
	w.WriteString("#### In process, CPU time (cpu-ns/op: the process's CPU time per request; medians)\n\n")
	w.WriteString("Unlike ns/op, it counts the garbage collector and the batch span processor and not time spent waiting for a core: " +
		"on a shared machine the steadier figure.\n\n")
	w.WriteString("| row | mode | gingov cpu-ns/op | v2 cpu-ns/op | v3 cpu-ns/op | ratio v2 | ratio v3 | Δ Gin ns |\n")
	w.WriteString("|---|---|---|---|---|---|---|---|\n")
	for _, p := range ps {
		g, k, k3 := p.gin, p.kratos, p.kratos3
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", p.label(), p.mode,
			val(g, cpuUnit), val(k, cpuUnit), val(k3, cpuUnit), ratio(g, k, cpuUnit), ratio(g, k3, cpuUnit), deltaOf(g, s.bare(p.mode), cpuUnit))
	}
	w.WriteString("\n")
}

// vals is "gingov / v2 / v3" medians of unit.
func vals(g, k, k3 *bench, unit string) string {
	if k == nil && k3 == nil {
		return val(g, unit)
	}
	return val(g, unit) + " / " + val(k, unit) + " / " + val(k3, unit)
}

// goals checks the targets of the comparison (issue 12): the full chain
// against both Kratos versions, serial and parallel, at ≤ 0.8x ns/op at
// 100% sampling and ≤ 0.5x at 10%, ≤ 0.5x allocs/op at both; serially
// ≤ 4 µs over bare Gin at 10% and ≤ 8 µs at 100%; end to end at 10%
// ≥ 0.7x bare Gin's requests/s, ≥ 1.5x Kratos v3.0.0's and ≥ 1.75x
// Kratos v2.9.2's, and at 100% ahead of both.
func goals(w *bytes.Buffer, s *set, ps []pair) {
	var rows [][5]string
	add := func(check, mode, value, target string, ok bool) {
		rows = append(rows, [5]string{check, mode, value, target, yes(ok)})
	}
	for _, p := range ps {
		if p.row != "full" || p.gin == nil {
			continue
		}
		nsTarget := map[string]float64{"100": 0.8, "10": 0.5}[p.sample]
		for _, o := range []struct {
			name string
			b    *bench
		}{{"v2.9.2", p.kratos}, {"v3.0.0", p.kratos3}} {
			for _, unit := range []string{"ns/op", cpuUnit} {
				if r, ok := ratioVal(p.gin, o.b, unit); ok && nsTarget > 0 {
					add(fmt.Sprintf("%s gingov / Kratos %s @%s%%", unit, o.name, p.sample), p.mode, fmt.Sprintf("%.2fx", r), fmt.Sprintf("≤ %.2fx", nsTarget), r <= nsTarget)
				}
			}
			if r, ok := ratioVal(p.gin, o.b, "allocs/op"); ok {
				add(fmt.Sprintf("allocs/op gingov / Kratos %s @%s%%", o.name, p.sample), p.mode, fmt.Sprintf("%.2fx", r), "≤ 0.50x", r <= 0.5)
			}
		}
		target := map[string]float64{"100": 8, "10": 4}[p.sample]
		if b := s.bare(p.mode); b != nil && p.mode == "serial" && target > 0 {
			for _, unit := range []string{"ns/op", cpuUnit} {
				g, ok1 := p.gin.median(unit)
				bv, ok2 := b.median(unit)
				if !ok1 || !ok2 {
					continue
				}
				d := (g - bv) / 1000
				check := fmt.Sprintf("overhead over bare Gin @%s%%", p.sample)
				if unit == cpuUnit {
					check = fmt.Sprintf("CPU overhead over bare Gin @%s%%", p.sample)
				}
				add(check, p.mode, fmt.Sprintf("%.2f µs", d), fmt.Sprintf("≤ %.0f µs", target), d <= target)
			}
		}
	}
	e2eGoal := func(sample, other string, target float64, strict bool) {
		g := s.get("BenchmarkE2E/sample=" + sample + "/server=gingov-full")
		name := "BenchmarkE2E/sample=" + sample + "/server=" + other
		if other == "gin-bare" {
			name = "BenchmarkE2E/server=gin-bare"
		}
		r, ok := ratioVal(g, s.get(name), "req/s")
		if !ok {
			return
		}
		op, met := "≥", r >= target
		if strict {
			op, met = ">", r > target
		}
		add(fmt.Sprintf("req/s gingov / %s @%s%%", other, sample), "end to end", fmt.Sprintf("%.2fx", r), fmt.Sprintf("%s %.2fx", op, target), met)
	}
	e2eGoal("10", "gin-bare", 0.7, false)
	e2eGoal("10", "kratos3-full", 1.5, false)
	e2eGoal("10", "kratos2-full", 1.75, false)
	e2eGoal("100", "kratos3-full", 1, true)
	e2eGoal("100", "kratos2-full", 1, true)
	if len(rows) == 0 {
		return
	}
	w.WriteString("#### Goals (full chain)\n\n")
	w.WriteString("| check | mode | value | target | met |\n|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", r[0], r[1], r[2], r[3], r[4])
	}
	w.WriteString("\n")
}

// e2e is the end-to-end table: one row per server and sampling, in the
// order they ran; "vs bare Gin" is the ratio of requests/s.
func e2e(w *bytes.Buffer, s *set) {
	var rows []*bench
	for _, name := range s.order {
		if strings.HasPrefix(name, "BenchmarkE2E/") {
			rows = append(rows, s.byName[name])
		}
	}
	if len(rows) == 0 {
		return
	}
	bare := s.get("BenchmarkE2E/server=gin-bare")
	w.WriteString("#### End to end (BenchmarkE2E: cmd/loadgen against cmd/benchserver; medians)\n\n")
	w.WriteString("| server | sampling | requests/s | vs bare Gin | p50 µs | p99 µs | server CPU µs/request | runs |\n|---|---|---|---|---|---|---|---|\n")
	for _, b := range rows {
		sample := key(b.name, "sample")
		if sample != "" {
			sample += "%"
		} else {
			sample = "—"
		}
		vs := "—"
		if b != bare {
			vs = ratio(b, bare, "req/s")
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %d |\n", key(b.name, "server"), sample,
			val(b, "req/s"), vs, val(b, "p50-µs"), val(b, "p99-µs"), val(b, "cpu-µs/op"), b.n("req/s"))
	}
	w.WriteString("\n")
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

func val(b *bench, unit string) string {
	if b == nil {
		return "—"
	}
	v, ok := b.median(unit)
	if !ok {
		return "—"
	}
	return num(v)
}

// num prints a median: whole numbers from 100 up, three significant
// digits below.
func num(v float64) string {
	if math.Abs(v) >= 100 {
		return strconv.FormatFloat(math.Round(v), 'f', -1, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

func ratioVal(a, b *bench, unit string) (float64, bool) {
	if a == nil || b == nil {
		return 0, false
	}
	av, ok1 := a.median(unit)
	bv, ok2 := b.median(unit)
	if !ok1 || !ok2 || bv == 0 {
		return 0, false
	}
	return av / bv, true
}

func ratio(a, b *bench, unit string) string {
	r, ok := ratioVal(a, b, unit)
	if !ok {
		return "—"
	}
	return strconv.FormatFloat(r, 'f', 2, 64) + "x"
}

func delta(g, bare *bench) string { return deltaOf(g, bare, "ns/op") }

// deltaOf is g's median of unit minus bare's.
func deltaOf(g, bare *bench, unit string) string {
	if g == nil || bare == nil || g == bare {
		return "—"
	}
	gv, ok1 := g.median(unit)
	bv, ok2 := bare.median(unit)
	if !ok1 || !ok2 {
		return "—"
	}
	return fmt.Sprintf("%+.0f", gv-bv)
}

// replaceBlock puts block between the markers of doc, which must hold
// each exactly once, begin first.
func replaceBlock(doc, block []byte) ([]byte, error) {
	b := bytes.Index(doc, []byte(beginMarker))
	e := bytes.Index(doc, []byte(endMarker))
	if b < 0 || e < 0 || e < b || bytes.Count(doc, []byte(beginMarker)) != 1 || bytes.Count(doc, []byte(endMarker)) != 1 {
		return nil, errors.New("needs one " + beginMarker + " line followed by one " + endMarker + " line")
	}
	var out bytes.Buffer
	out.Write(doc[:b+len(beginMarker)])
	out.WriteString("\n")
	out.Write(block)
	out.Write(doc[e:])
	return out.Bytes(), nil
}
