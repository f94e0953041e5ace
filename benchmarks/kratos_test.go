package benchmarks

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/gingov/gingov/internal/benchping"
)

// BenchmarkKratos is the in-process comparison: every row of kases on both
// sides, serial and parallel, traced rows at each sampling. Names are
// key=value so that benchstat can pivot on them:
//
//	benchstat -col /side kratos.txt
//
// side=gin is Gin with gingov's middlewares (bare Gin in row=bare),
// side=kratos is Kratos v2.9.2 with its own, side=kratos3 Kratos v3.0.0
// with its own (sides_kratos3.go).
func BenchmarkKratos(b *testing.B) {
	for _, k := range kases {
		for _, sample := range rowSamplings(k) {
			name := "row=" + k.row
			if sample != 0 {
				name += "/sample=" + strconv.Itoa(sample)
			}
			b.Run(name, func(b *testing.B) {
				for _, mode := range []string{"serial", "parallel"} {
					b.Run("mode="+mode, func(b *testing.B) {
						for _, side := range sides(k) {
							b.Run("side="+side, func(b *testing.B) {
								h := build(b, k, side, sample)
								if mode == "serial" {
									benchping.Serve(b, h)
								} else {
									benchping.ServeParallel(b, h)
								}
							})
						}
					})
				}
			})
		}
	}
}

// rowSamplings is the samplings a row runs at: each of samplings when it
// traces, else only 0 (the row does not depend on it; the tracer provider
// is built but unused).
func rowSamplings(k kase) []int {
	if k.gin.tracing || k.krat.tracing {
		return samplings
	}
	return []int{0}
}

func sides(k kase) []string {
	if k.ginOnly {
		return []string{"gin"}
	}
	return []string{"gin", "kratos", "kratos3"}
}

// build returns the handler of one side of a case, with a fresh env.
func build(tb testing.TB, k kase, side string, sample int) http.Handler {
	h, _ := buildEnv(tb, k, side, sample)
	return h
}

// buildEnv is build returning the env as well.
func buildEnv(tb testing.TB, k kase, side string, sample int) (http.Handler, *env) {
	e := newEnv(tb, sample)
	return buildSide(tb, k, side, e), e
}
