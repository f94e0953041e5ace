package benchmarks

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if sentinelDir != "" {
		os.RemoveAll(sentinelDir)
	}
	if code == 0 {
		if err := goleak.Find(leftovers...); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// leftovers are goroutines the compared libraries start and never stop.
var leftovers = []goleak.Option{
	// go-zero starts these in init() and never stops them: a signal
	// listener and the CPU-usage sampler. Linked by the go-zero cases.
	goleak.IgnoreTopFunction("github.com/zeromicro/go-zero/core/proc.init.1.func1"),
	goleak.IgnoreTopFunction("github.com/zeromicro/go-zero/core/stat.init.1.func1"),
	// aegis (Kratos's BBR) samples CPU from goroutines its init starts.
	goleak.IgnoreTopFunction("github.com/go-kratos/aegis/ratelimit/bbr.cpuproc"),
	goleak.IgnoreTopFunction("github.com/go-kratos/aegis/internal/cpu.init.0.func1"),
	// Kratos v3's copy of BBR does the same (linked by its ratelimit middleware).
	goleak.IgnoreTopFunction("github.com/go-kratos/kratos/v3/internal/ratelimit.cpuproc"),
	// Sentinel's collectors run for the life of the process once Init has
	// run (the full-chain rows initialise it).
	goleak.IgnoreAnyFunction("github.com/alibaba/sentinel-golang/core/system_metric.InitCpuCollector.func1.1"),
	goleak.IgnoreAnyFunction("github.com/alibaba/sentinel-golang/core/system_metric.InitMemoryCollector.func1.1"),
	goleak.IgnoreAnyFunction("github.com/alibaba/sentinel-golang/core/system_metric.InitLoadCollector.func1.1"),
	goleak.IgnoreAnyFunction("github.com/alibaba/sentinel-golang/util.StartTimeTicker.func1"),
}
