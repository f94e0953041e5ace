package etcd_test

import (
	"testing"
	"time"

	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/registry/etcd"
	"github.com/gingov/gingov/registry/registrytest"
)

// TestConformance runs the registry package's backend checks against a
// real etcd.
func TestConformance(t *testing.T) {
	e := testenv.StartEtcd(t)
	var events registrytest.Events
	r := dial(t, e, etcd.WithTTL(3*time.Second), etcd.WithOnEvent(events.OnEvent))
	registrytest.Run(t, r, r, registrytest.Options{Timeout: 5 * time.Second, Backend: "etcd", Events: &events})
}
