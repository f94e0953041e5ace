package testenv_test

import (
	"fmt"
	"testing"

	"github.com/gingov/gingov/internal/testenv"
)

// recorder records what a test helper reports instead of failing.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func TestLogLines(t *testing.T) {
	logs := `{"time":"2026-12-04T22:00:00Z","level":"WARN","msg":"a failed","n":1}` + "\n" +
		`{"time":"2026-12-04T22:00:01Z","level":"INFO","msg":"other"}` + "\n" +
		`{"time":"2026-12-04T22:00:02Z","level":"ERROR","msg":"a failed","n":2}` + "\n"
	want := `{"level":"WARN","msg":"a failed","n":1}` + "\n" + `{"level":"ERROR","msg":"a failed","n":2}` + "\n"
	if got := testenv.LogLines(logs, "a failed"); got != want {
		t.Fatalf("LogLines:\n%s\nwant:\n%s", got, want)
	}

	r := &recorder{TB: t}
	testenv.WantLogLines(r, logs, "a failed", `{"level":"WARN","msg":"a failed","n":1}`, `{"level":"ERROR","msg":"a failed","n":2}`)
	testenv.WantLogLines(r, logs, "nothing")
	if len(r.errs) != 0 {
		t.Fatalf("matching lines reported: %q", r.errs)
	}
	testenv.WantLogLines(r, logs, "a failed", `{"level":"WARN","msg":"a failed","n":1}`)
	testenv.WantLogLines(r, logs, "other")
	if len(r.errs) != 2 {
		t.Fatalf("%d reports for 2 mismatches: %q", len(r.errs), r.errs)
	}
}
