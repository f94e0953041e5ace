// Package discover builds the registry client the gateway and orders
// examples share: Nacos, Eureka or Consul, chosen by flags.
package discover

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/gingov/gingov/registry"
	"github.com/gingov/gingov/registry/consul"
	"github.com/gingov/gingov/registry/eureka"
	"github.com/gingov/gingov/registry/nacos"
)

// Flags select the registry.
type Flags struct {
	Nacos  string        // Nacos HTTP host:port
	Eureka string        // Eureka base URL, http://host:8761/eureka
	Poll   time.Duration // Eureka: how often discovery reads the server
	Consul string        // Consul agent HTTP host:port
}

// Register adds the registry flags to fs.
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.Nacos, "nacos", "", "Nacos server host:port")
	fs.StringVar(&f.Eureka, "eureka", "", "Eureka base URL, e.g. http://127.0.0.1:8761/eureka")
	fs.DurationVar(&f.Poll, "eureka-poll", 5*time.Second, "how often Eureka discovery reads the server")
	fs.StringVar(&f.Consul, "consul", "", "Consul agent host:port, e.g. 127.0.0.1:8500")
}

// Open connects to the registry the flags name: exactly one of -nacos,
// -eureka and -consul.
func (f *Flags) Open(logger *slog.Logger) (registry.Registry, error) {
	set := 0
	for _, v := range []string{f.Nacos, f.Eureka, f.Consul} {
		if v != "" {
			set++
		}
	}
	switch {
	case set > 1:
		return nil, errors.New("set one of -nacos, -eureka and -consul")
	case f.Nacos != "":
		return nacos.New([]string{f.Nacos}, nacos.WithLogger(logger))
	case f.Consul != "":
		// An HTTP check on the Server's /readyz, every 10 s by default.
		return consul.New(f.Consul, consul.WithLogger(logger))
	case f.Eureka != "":
		// Renew every 5 s with a 15 s lease, so that a crashed instance
		// leaves discovery quickly.
		return eureka.New([]string{f.Eureka}, eureka.WithLogger(logger),
			eureka.WithPollInterval(f.Poll),
			eureka.WithRenewalInterval(5*time.Second), eureka.WithLeaseDuration(15*time.Second))
	}
	return nil, fmt.Errorf("set -nacos, -eureka or -consul")
}
