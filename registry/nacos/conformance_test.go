package nacos_test

import (
	"testing"
	"time"

	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/registry/nacos"
	"github.com/gingov/gingov/registry/registrytest"
)

// TestConformance runs the registry package's backend checks against a
// real rnacos.
func TestConformance(t *testing.T) {
	n := testenv.StartNacos(t)
	var events registrytest.Events
	r, _ := newRegistry(t, n, nacos.WithOnEvent(events.OnEvent))
	registrytest.Run(t, r, r, registrytest.Options{Timeout: 5 * time.Second, Backend: "nacos", Events: &events})
}
