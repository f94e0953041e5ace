package nacos_test

import (
	"testing"
	"time"

	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/registry/registrytest"
)

// TestConformance runs the registry package's backend checks against a
// real rnacos.
func TestConformance(t *testing.T) {
	n := testenv.StartNacos(t)
	r, _ := newRegistry(t, n)
	registrytest.Run(t, r, r, registrytest.Options{Timeout: 5 * time.Second})
}
