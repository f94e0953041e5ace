package consul_test

import (
	"testing"
	"time"

	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/registry/consul"
	"github.com/gingov/gingov/registry/registrytest"
)

// TestConformance runs the registry package's backend checks against a
// real Consul agent. The suite's instances listen nowhere, so they are
// registered with a TTL check that the registry passes itself (an HTTP
// check would keep them critical, hence unlisted).
func TestConformance(t *testing.T) {
	c := testenv.StartConsul(t)
	var events registrytest.Events
	r := newRegistry(t, c, consul.WithTTLCheck(5*time.Second), consul.WithWatchWait(2*time.Second), consul.WithOnEvent(events.OnEvent))
	registrytest.Run(t, r, r, registrytest.Options{Timeout: 5 * time.Second, Backend: "consul", Events: &events})
}
