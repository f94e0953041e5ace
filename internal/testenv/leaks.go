package testenv

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// NacosLeftovers are the goroutines nacos-sdk-go v2 leaves running after
// CloseClient, for goleak: its log rotation (started with its global
// logger), the naming client's UDP push receiver blocked in a read (it
// checks its context only between datagrams), and a config notifier it
// leaves blocked on a channel.
func NacosLeftovers() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreAnyFunction("gopkg.in/natefinch/lumberjack%2ev2.(*Logger).millRun"),
		goleak.IgnoreAnyFunction("github.com/nacos-group/nacos-sdk-go/v2/clients/naming_client/naming_http.(*PushReceiver).startServer.func1"),
		goleak.IgnoreAnyFunction("github.com/nacos-group/nacos-sdk-go/v2/clients/config_client.(*ConfigClient).asyncNotifyListenConfig.func1"),
	}
}

// SentinelLeftovers are the collectors sentinel-golang runs for the life of
// the process once it is initialised, plus NacosLeftovers (its rule source
// uses the Nacos SDK).
func SentinelLeftovers() []goleak.Option {
	return append(NacosLeftovers(),
		goleak.IgnoreAnyFunction("github.com/alibaba/sentinel-golang/core/system_metric.InitCpuCollector.func1.1"),
		goleak.IgnoreAnyFunction("github.com/alibaba/sentinel-golang/core/system_metric.InitMemoryCollector.func1.1"),
		goleak.IgnoreAnyFunction("github.com/alibaba/sentinel-golang/core/system_metric.InitLoadCollector.func1.1"),
		goleak.IgnoreAnyFunction("github.com/alibaba/sentinel-golang/util.StartTimeTicker.func1"),
	)
}

// MainWithDir is a TestMain body for packages whose code needs a process-
// wide directory set up once (Sentinel's log dir): it makes a temporary
// directory, calls setup with it, runs the tests, removes it and, when
// they passed, fails on goroutines left running other than those opts
// allow. It does not return.
func MainWithDir(m *testing.M, setup func(dir string) error, opts ...goleak.Option) {
	dir, err := os.MkdirTemp("", "gingov-test")
	if err != nil {
		panic(err)
	}
	if err := setup(dir); err != nil {
		panic(err)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(opts...); err != nil {
			println(err.Error())
			code = 1
		}
	}
	os.Exit(code)
}
