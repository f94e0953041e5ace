package sentinel

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/clients"
	"github.com/nacos-group/nacos-sdk-go/v2/clients/config_client"
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

// NacosSource says where in the Nacos config center the rule document is.
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

// WatchNacos loads the rule document from the Nacos config center and
// applies every change, pushed by the server or read every poll interval
// (WithPollInterval, default 1 s), until ctx is done; then it
// cancels the listener and closes the client, and wait returns. A missing
// or empty document at start means no rules; an invalid one is an error.
// Later invalid versions are rejected and logged at ERROR once per distinct
// document (as WatchFile), and the rules in force stay; a server that stops
// answering the poll is logged at WARN once until it answers again.
func WatchNacos(ctx context.Context, src NacosSource, opts ...SourceOption) (wait func(), err error) {
	if err := Init(); err != nil {
		return nil, err
	}
	return WatchNacosFunc(ctx, src, LoadDocument, opts...)
}

// WatchNacosFunc is WatchNacos for any document: apply gets the content at
// start (unless missing or empty) and whenever it changes. An error from
// apply rejects that version (logged); the first one must be accepted. A
// nil apply is an error.
func WatchNacosFunc(ctx context.Context, src NacosSource, apply func([]byte) error, opts ...SourceOption) (wait func(), err error) {
	cfg, err := newSourceConfig(opts)
	if err != nil {
		return nil, err
	}
	if apply == nil {
		return nil, errors.New("sentinel: WatchNacosFunc: nil apply function")
	}
	if src.DataID == "" {
		return nil, errors.New("sentinel: Nacos source needs a DataID")
	}
	host, portStr, err := net.SplitHostPort(src.Addr)
	if err != nil {
		return nil, fmt.Errorf("sentinel: Nacos address %q: %w", src.Addr, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("sentinel: Nacos port %q: %w", portStr, err)
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
			// A server that does not answer is an error (at start) or an
			// outage (later), never a stale snapshot from the cache dir,
			// which other processes and servers share.
			constant.WithDisableUseSnapShot(true),
			constant.WithLogDir(filepath.Join(src.Dir, "log")),
			constant.WithCacheDir(filepath.Join(src.Dir, "cache")),
			constant.WithLogLevel("warn"),
		),
		ServerConfigs: []constant.ServerConfig{*constant.NewServerConfig(host, port, sopts...)},
	})
	if err != nil {
		return nil, fmt.Errorf("sentinel: Nacos client: %w", err)
	}
	a := newApplier(ctx, "nacos:"+src.Group+"/"+src.DataID, apply, cfg)
	param := vo.ConfigParam{DataId: src.DataID, Group: src.Group}

	// The client connects in the background: retry the first read.
	content, err := firstRead(ctx, client, param, src.Timeout)
	if err != nil {
		client.CloseClient()
		return nil, err
	}
	if content != "" {
		if err := a.Apply([]byte(content)); err != nil {
			client.CloseClient()
			return nil, err
		}
	}
	param.OnChange = func(_, _, _, data string) { _ = a.Apply([]byte(data)) } // logged by Apply
	if err := client.ListenConfig(param); err != nil {
		client.CloseClient()
		return nil, fmt.Errorf("sentinel: Nacos listen: %w", err)
	}
	// The SDK's pushes can be lost (its notifier can block on a full
	// channel), so the document is also read every poll interval; Apply
	// skips content it has already applied.
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(cfg.interval)
		defer t.Stop()
		unreachable := outage{logger: a.logger, source: a.source}
		for {
			select {
			case <-ctx.Done():
				_ = client.CancelListenConfig(vo.ConfigParam{DataId: src.DataID, Group: src.Group})
				client.CloseClient()
				return
			case <-t.C:
				content, err := client.GetConfig(vo.ConfigParam{DataId: src.DataID, Group: src.Group})
				if err != nil {
					// The SDK throttles reads of one document to 5 a
					// second in the process (polls faster than 200 ms,
					// pushes): that is no outage, the next poll reads.
					if !strings.Contains(err.Error(), "is limited") {
						unreachable.fail(err)
					}
					continue
				}
				unreachable.ok()
				if content != "" {
					_ = a.Apply([]byte(content)) // logged by Apply
				}
			}
		}
	}()
	return func() { <-done }, nil
}

func firstRead(ctx context.Context, client config_client.IConfigClient, param vo.ConfigParam, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for attempt := 0; ; attempt++ {
		content, err := client.GetConfig(param)
		if err == nil {
			return content, nil
		}
		wait := firstReadBackoff.Delay(attempt)
		if time.Now().Add(wait).After(deadline) {
			return "", fmt.Errorf("sentinel: read %s from Nacos: %w", param.DataId, err)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(wait):
		}
	}
}

// firstReadBackoff spaces the first read's attempts while the client
// connects: from 50 ms doubling to 1 s, each wait drawn from the upper half
// of its base (jitter).
var firstReadBackoff = registry.Backoff{Min: 50 * time.Millisecond, Max: time.Second}
