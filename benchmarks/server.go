package benchmarks

import (
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/gin-gonic/gin"
)

// Sides are the sides a handler can be built for: "gin" (gingov's
// middlewares on Gin; bare Gin in row "bare"), "kratos" (Kratos v2.9.2)
// and "kratos3" (Kratos v3.0.0).
var Sides = []string{"gin", "kratos", "kratos3"}

// Rows returns the rows of the comparison a side can serve, in table order.
func Rows(side string) []string {
	var rows []string
	for _, k := range kases {
		if side == "gin" || !k.ginOnly {
			rows = append(rows, k.row)
		}
	}
	return rows
}

// Served is a handler built by [NewHandler] with what it has done so far.
type Served struct {
	Handler http.Handler
	e       *env
	tb      *procTB
}

// Spans returns the number of spans exported so far (the batch processor
// exports them in the background; Close flushes it).
func (s *Served) Spans() int64 { return s.e.spans.spans.Load() }

// LogLines returns the number of JSON log lines written so far.
func (s *Served) LogLines() int64 { return s.e.log.writes.Load() }

// Close flushes and stops what the handler started (tracer and meter
// providers, limiters), last started first. Call it once the server has
// stopped serving.
func (s *Served) Close() {
	for _, f := range slices.Backward(s.tb.cleanups) {
		f()
	}
	s.tb.cleanups = nil
}

// NewHandler builds the handler of one side of one row at samplePercent
// (1 to 100) with a fresh env, exactly as BenchmarkKratos does, for a
// server in a process of its own (cmd/benchserver). It puts Gin in
// release mode.
func NewHandler(side, row string, samplePercent int) (s *Served, err error) {
	if !slices.Contains(Sides, side) {
		return nil, fmt.Errorf("benchmarks: unknown side %q (want one of %q)", side, Sides)
	}
	k, ok := kaseNamed(row)
	if !ok || (k.ginOnly && side != "gin") {
		return nil, fmt.Errorf("benchmarks: side %s has no row %q (want one of %q)", side, row, Rows(side))
	}
	if samplePercent < 1 || samplePercent > 100 {
		return nil, fmt.Errorf("benchmarks: sampling %d%% out of 1..100", samplePercent)
	}
	gin.SetMode(gin.ReleaseMode)
	tb := &procTB{}
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(fatal)
			if !ok {
				panic(r)
			}
			(&Served{tb: tb}).Close()
			s, err = nil, errors.New(string(f))
		}
	}()
	e := newEnv(tb, samplePercent)
	return &Served{Handler: buildSide(tb, k, side, e), e: e, tb: tb}, nil
}

// buildSide builds the handler of one side of k over e.
func buildSide(tb tbLike, k kase, side string, e *env) http.Handler {
	switch side {
	case "kratos":
		return newKratos(tb, e, k.krat)
	case "kratos3":
		return newKratos3(tb, e, k.krat)
	}
	return newGin(tb, e, k.gin)
}

func kaseNamed(row string) (kase, bool) {
	for _, k := range kases {
		if k.row == row {
			return k, true
		}
	}
	return kase{}, false
}

// procTB is tbLike for a process: Fatal unwinds to NewHandler, Cleanup
// collects what Served.Close runs.
type procTB struct{ cleanups []func() }

type fatal string

func (t *procTB) Fatal(args ...any) { panic(fatal(fmt.Sprint(args...))) }
func (t *procTB) Cleanup(f func())  { t.cleanups = append(t.cleanups, f) }
