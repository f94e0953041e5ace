package stdout_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/gingov/gingov/tracing/stdout"
)

func TestOptionsValidated(t *testing.T) {
	if _, err := stdout.New(stdout.WithWriter(nil)); err == nil || err.Error() != "stdout: WithWriter: writer is nil" {
		t.Errorf("WithWriter(nil): %v", err)
	}
	if _, err := stdout.New(stdout.WithWriter(&bytes.Buffer{}), nil); err == nil || err.Error() != "stdout: option 2 is nil" {
		t.Errorf("nil option: %v", err)
	}
}

// Each span is one JSON line on the writer.
func TestWritesJSONLines(t *testing.T) {
	var out bytes.Buffer
	exp, err := stdout.New(stdout.WithWriter(&out))
	if err != nil {
		t.Fatal(err)
	}
	spans := tracetest.SpanStubs{{Name: "a"}, {Name: "b"}}.Snapshots()
	if err := exp.ExportSpans(t.Context(), spans); err != nil {
		t.Fatal(err)
	}
	_ = exp.Shutdown(context.Background())
	if n := bytes.Count(out.Bytes(), []byte("\n")); n != 2 {
		t.Fatalf("%d lines; want 2:\n%s", n, out.String())
	}
	dec := json.NewDecoder(&out)
	for _, want := range []string{"a", "b"} {
		var got struct{ Name string }
		if err := dec.Decode(&got); err != nil || got.Name != want {
			t.Fatalf("line: %+v, %v; want span %q", got, err, want)
		}
	}
}
