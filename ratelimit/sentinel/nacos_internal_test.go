package sentinel

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/clients/config_client"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"
)

// failingConfig is a Nacos config client whose reads all fail.
type failingConfig struct {
	config_client.IConfigClient
	reads []time.Time
}

func (f *failingConfig) GetConfig(vo.ConfigParam) (string, error) {
	f.reads = append(f.reads, time.Now())
	return "", errors.New("not connected")
}

// The first read is retried with the kit's backoff: from 50 ms doubling to
// 1 s, each wait in the upper half of its base (jitter), until the timeout.
func TestFirstReadBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := &failingConfig{}
		if _, err := firstRead(context.Background(), c, vo.ConfigParam{DataId: "x"}, 5*time.Second); err == nil {
			t.Fatal("no error")
		}
		if len(c.reads) < 6 {
			t.Fatalf("%d reads in 5 s", len(c.reads))
		}
		jittered := false
		for i := 1; i < len(c.reads); i++ {
			base := min(50*time.Millisecond<<(i-1), time.Second)
			gap := c.reads[i].Sub(c.reads[i-1])
			if gap < base/2 || gap > base {
				t.Fatalf("wait %d is %v, want within [%v, %v]", i, gap, base/2, base)
			}
			jittered = jittered || gap != base
		}
		if !jittered {
			t.Fatal("every wait is its base, no jitter")
		}
	})
}

// The defaults of a NacosSource and of Init are the exported constants.
func TestSourceAndInitDefaults(t *testing.T) {
	if DefaultNacosGroup != "DEFAULT_GROUP" || DefaultNacosTimeout != 10*time.Second {
		t.Fatalf("Nacos defaults %q %v", DefaultNacosGroup, DefaultNacosTimeout)
	}
	e, err := newInitConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.Sentinel.Stat.System.CollectIntervalMs; got != DefaultSystemStatsInterval || DefaultSystemStatsInterval != 1000 {
		t.Fatalf("system stats every %d ms, want DefaultSystemStatsInterval (1000)", got)
	}
}
