package sentinel_test

import (
	"testing"
	"time"

	"github.com/alibaba/sentinel-golang/core/config"
	"github.com/alibaba/sentinel-golang/util"
)

// Init turns Sentinel's cached clock on by default (TestMain calls Init
// without WithCachedClock), and the cached time tracks the system clock to
// within a few milliseconds. TestFlowRuleAdmitsItsRate and
// TestFlowWarmUpRamps check that flow rules keep their accuracy with it.
func TestCachedClockOnByDefault(t *testing.T) {
	if !config.UseCacheTime() {
		t.Fatal("Sentinel's cached clock is off")
	}
	for range 50 {
		cached := util.CurrentTimeMillsWithTicker()
		if cached == 0 {
			t.Fatal("the cached clock is not running")
		}
		now := uint64(time.Now().UnixMilli())
		if cached > now || now-cached > 50 {
			t.Fatalf("cached clock %d, system clock %d", cached, now)
		}
		if got := util.CurrentTimeMillis(); got < cached {
			t.Fatalf("CurrentTimeMillis %d before the cached %d", got, cached)
		}
		time.Sleep(3 * time.Millisecond)
	}
}
