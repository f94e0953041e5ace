// Package discover builds the registry client the gateway and orders
// examples share: Nacos or Eureka, chosen by flags.
package discover

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/gingov/gingov/registry"
	"github.com/gingov/gingov/registry/nacos"
)

// Flags select the registry.
type Flags struct {
	Nacos  string        // Nacos HTTP host:port
	Eureka string        // Eureka base URL, http://host:8761/eureka
	Poll   time.Duration // Eureka: how often discovery reads the server
}

// Register adds the registry flags to fs.
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.Nacos, "nacos", "", "Nacos server host:port")
	fs.StringVar(&f.Eureka, "eureka", "", "Eureka base URL, e.g. http://127.0.0.1:8761/eureka")
	fs.DurationVar(&f.Poll, "eureka-poll", 5*time.Second, "how often Eureka discovery reads the server")
}

// Backend is a registry that registers and discovers.
type Backend interface {
	registry.Registrar
	registry.Discovery
	Close() error
}

// Open connects to the registry the flags name: exactly one of -nacos and
// -eureka.
func (f *Flags) Open(logger *slog.Logger) (Backend, error) {
	switch {
	case f.Nacos != "" && f.Eureka != "":
		return nil, errors.New("set one of -nacos and -eureka")
	case f.Nacos != "":
		return nacos.New(nacos.Config{Servers: []string{f.Nacos}, Logger: logger})
	case f.Eureka != "":
		// Renew every 5 s with a 15 s lease, so that a crashed instance
		// leaves discovery quickly.
		return registry.NewEureka([]string{f.Eureka}, registry.WithEurekaLogger(logger),
			registry.WithEurekaPollInterval(f.Poll),
			registry.WithEurekaRenewalInterval(5*time.Second), registry.WithEurekaLeaseDuration(15*time.Second))
	}
	return nil, fmt.Errorf("set -nacos or -eureka")
}
