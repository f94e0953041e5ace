package errcode_test

import (
	"os"
	"testing"

	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/errcode/internal/codetable"
)

// TestCodeTableUpToDate fails when docs/errcodes.md no longer matches the
// kit's codes: run `make generate` (go generate ./errcode) and commit it.
func TestCodeTableUpToDate(t *testing.T) {
	got, err := os.ReadFile("../docs/errcodes.md")
	if err != nil {
		t.Fatalf("%v: run `make generate`", err)
	}
	if want := codetable.Markdown(errcode.Kit()); string(got) != want {
		t.Fatalf("docs/errcodes.md is stale: run `make generate` and commit it")
	}
}
