package envoy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/clients"
	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/gingov/gingov/registry"
)

// Defaults of a NacosSource.
const (
	// DefaultNacosGroup is the group of a NacosSource without one (Nacos's
	// own default group).
	DefaultNacosGroup = "DEFAULT_GROUP"
	// DefaultNacosTimeout bounds the first read of a NacosSource without a
	// Timeout.
	DefaultNacosTimeout = 10 * time.Second
)

// NacosSource says where in the Nacos config center the configuration
// document is (the fields of sentinel.NacosSource, for the same servers).
type NacosSource struct {
	// Addr is the server's HTTP host:port; gRPC is on port+1000 (the Nacos
	// 2.x convention) unless GRPCPort is set.
	Addr     string
	GRPCPort uint64
	// Namespace, Group (default [DefaultNacosGroup]) and DataID (required).
	Namespace string
	Group     string
	DataID    string
	Username  string
	Password  string
	// Dir holds the SDK's log and cache files (default: a directory under
	// the system temp dir, never next to the executable).
	Dir string
	// Timeout bounds the first read, including the SDK's connection
	// (default [DefaultNacosTimeout]).
	Timeout time.Duration
}

// WatchNacos loads the YAML configuration (ParseConfig) from the Nacos
// config center and reloads it whenever it changes, pushed by the server or
// read every poll interval (WithPollInterval), until ctx is done; then it
// cancels the listener and closes the client, and wait returns. The
// document must exist and load at start. Later, an invalid version is
// rejected and logged once at ERROR (once per distinct content), and the
// configuration in force stays; so does it when the document is deleted.
func (s *Service) WatchNacos(ctx context.Context, src NacosSource, opts ...WatchOption) (wait func(), err error) {
	cfg, err := newWatchConfig(opts)
	if err != nil {
		return nil, err
	}
	if src.DataID == "" {
		return nil, errors.New("envoy: NacosSource.DataID: empty")
	}
	host, portStr, err := net.SplitHostPort(src.Addr)
	if err != nil {
		return nil, fmt.Errorf("envoy: NacosSource.Addr: %q: %w", src.Addr, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("envoy: NacosSource.Addr: port %q: %w", portStr, err)
	}
	if src.Group == "" {
		src.Group = DefaultNacosGroup
	}
	if src.Timeout <= 0 {
		src.Timeout = DefaultNacosTimeout
	}
	if src.Dir == "" {
		src.Dir = filepath.Join(os.TempDir(), "gingov-nacos")
	}
	var sopts []constant.ServerOption
	if src.GRPCPort != 0 {
		sopts = append(sopts, constant.WithGrpcPort(src.GRPCPort))
	}
	client, err := clients.NewConfigClient(vo.NacosClientParam{
		ClientConfig: constant.NewClientConfig(
			constant.WithNamespaceId(src.Namespace),
			constant.WithUsername(src.Username),
			constant.WithPassword(src.Password),
			constant.WithTimeoutMs(uint64(min(src.Timeout, 5*time.Second)/time.Millisecond)),
			constant.WithNotLoadCacheAtStart(true),
			// A server that does not answer is an error (at start) or a
			// missed poll (later), never a stale snapshot from the cache
			// dir, which other processes and servers share (as
			// sentinel.WatchNacosFunc).
			constant.WithDisableUseSnapShot(true),
			constant.WithLogDir(filepath.Join(src.Dir, "log")),
			constant.WithCacheDir(filepath.Join(src.Dir, "cache")),
			constant.WithLogLevel("warn"),
		),
		ServerConfigs: []constant.ServerConfig{*constant.NewServerConfig(host, port, sopts...)},
	})
	if err != nil {
		return nil, fmt.Errorf("envoy: Nacos client: %w", err)
	}
	param := func() vo.ConfigParam { return vo.ConfigParam{DataId: src.DataID, Group: src.Group} }
	source := "nacos:" + src.Group + "/" + src.DataID

	content, err := firstRead(ctx, client.GetConfig, param(), src.Timeout)
	if err == nil && content == "" {
		err = fmt.Errorf("envoy: %s: no such document", source)
	}
	if err == nil {
		err = s.LoadDocument([]byte(content))
	}
	if err != nil {
		client.CloseClient()
		return nil, err
	}
	s.cfg.logger.Info("rate-limit configuration loaded", "source", source)
	r := newReloader(s, source, cfg, []byte(content))
	p := param()
	p.OnChange = func(_, _, _, data string) {
		if data != "" {
			r.apply([]byte(data))
		}
	}
	if err := client.ListenConfig(p); err != nil {
		client.CloseClient()
		return nil, fmt.Errorf("envoy: Nacos listen: %w", err)
	}
	// The SDK's pushes can be lost, so the document is also read every
	// poll interval; apply skips what it has already seen.
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(cfg.interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				_ = client.CancelListenConfig(param())
				client.CloseClient()
				return
			case <-t.C:
				if content, err := client.GetConfig(param()); err == nil && content != "" {
					r.apply([]byte(content))
				}
			}
		}
	}()
	return func() { <-done }, nil
}

// firstRead retries the first read while the client connects in the
// background.
func firstRead(ctx context.Context, get func(vo.ConfigParam) (string, error), param vo.ConfigParam, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for attempt := 0; ; attempt++ {
		content, err := get(param)
		if err == nil {
			return content, nil
		}
		wait := firstReadBackoff.Delay(attempt)
		if time.Now().Add(wait).After(deadline) {
			return "", fmt.Errorf("envoy: read %s from Nacos: %w", param.DataId, err)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(wait):
		}
	}
}

// firstReadBackoff spaces the first read's attempts: from 50 ms doubling
// to 1 s, with jitter.
var firstReadBackoff = registry.Backoff{Min: 50 * time.Millisecond, Max: time.Second}
