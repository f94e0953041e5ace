// Package otlpopt holds what the OTLP exporter packages (otlphttp,
// otlpgrpc) are given alike, and checks it once for both: the collector
// endpoint, TLS and export headers ([Config], [Apply]). Each package keeps
// its own Option type and With... functions over Config.
package otlpopt

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/gingov/gingov/reqinfo"
)

// IsURL reports whether ep is given as a URL rather than host:port.
func IsURL(ep string) bool { return strings.Contains(ep, "://") }

// CheckEndpoint accepts host:port with a numeric port, or an http(s) URL
// with a host. The error says what is wrong with ep, for the caller to
// prefix with its package and option.
func CheckEndpoint(ep string) error {
	if IsURL(ep) {
		u, err := url.Parse(ep)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%q is not host:port or an http(s) URL", ep)
		}
		return nil
	}
	host, port, err := net.SplitHostPort(ep)
	if err != nil || host == "" {
		return fmt.Errorf("%q is not host:port or an http(s) URL", ep)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return fmt.Errorf("%q has no valid port", ep)
	}
	return nil
}

// CheckHeaders reports the first header name that is not one.
func CheckHeaders(h map[string]string) error {
	for k := range h {
		if !reqinfo.ValidHeaderName(k) {
			return fmt.Errorf("%q is not a header name", k)
		}
	}
	return nil
}
