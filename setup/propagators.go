package setup

import (
	"fmt"

	"github.com/gingov/gingov/setup/internal/choices"
	"github.com/gingov/gingov/tracing"
)

// validatePropagators checks tracing.propagators: nil takes the default,
// an empty list and unknown names are errors naming the entry.
func validatePropagators(names []string) error {
	if names == nil {
		return nil
	}
	if len(names) == 0 {
		return fieldErr("tracing.propagators", "names no propagator (leave it out for the default, tracecontext and baggage)")
	}
	for i, n := range names {
		if _, err := tracing.NewPropagator(n); err != nil {
			return fieldErr(fmt.Sprintf("tracing.propagators[%d]", i), "%q is not %s", n, choices.Propagator)
		}
	}
	return nil
}

// propagatorOptions is tracing.propagators as an option of tracing.New
// (none for the default; DefaultMeshPropagators in a mesh).
func propagatorOptions(cfg Config) []tracing.Option {
	switch {
	case cfg.Tracing.Propagators != nil:
		return []tracing.Option{tracing.WithPropagators(cfg.Tracing.Propagators...)}
	case cfg.meshed():
		return []tracing.Option{tracing.WithPropagators(DefaultMeshPropagators...)}
	}
	return nil
}
