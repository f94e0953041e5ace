package testenv_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/gingov/gingov/internal/testenv"
)

// recordTB records how Require ends a test instead of ending the real one.
type recordTB struct {
	*testing.T
	skipped, failed string
}

func (r *recordTB) Helper() {}
func (r *recordTB) Skip(args ...any) {
	r.skipped = fmt.Sprint(args...)
	runtime.Goexit()
}
func (r *recordTB) Fatal(args ...any) {
	r.failed = fmt.Sprint(args...)
	runtime.Goexit()
}

func require(t *testing.T, name string) *recordTB {
	rec := &recordTB{T: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		testenv.Require(rec, name, "apt-get install -y "+name)
	}()
	<-done
	return rec
}

func TestRequireMissingBinary(t *testing.T) {
	const missing = "gingov-no-such-server"
	t.Setenv("CI", "")
	rec := require(t, missing)
	if rec.failed != "" || !strings.Contains(rec.skipped, "apt-get install -y "+missing) || !strings.Contains(rec.skipped, testenv.InstallHint) {
		t.Fatalf("outside CI: skipped=%q failed=%q", rec.skipped, rec.failed)
	}
	t.Setenv("CI", "true")
	rec = require(t, missing)
	if rec.skipped != "" || !strings.Contains(rec.failed, missing+" not found") {
		t.Fatalf("under CI: skipped=%q failed=%q", rec.skipped, rec.failed)
	}
	if p := testenv.Require(t, "sh", "apt-get install -y dash"); p == "" {
		t.Fatal("sh not found")
	}
}
