package sentinel

import "testing"

func TestWithCachedClock(t *testing.T) {
	for _, c := range []struct {
		opts []InitOption
		want bool
	}{{nil, true}, {[]InitOption{WithCachedClock(false)}, false}, {[]InitOption{WithCachedClock(true)}, true}} {
		e, err := newInitConfig(c.opts)
		if err != nil {
			t.Fatal(err)
		}
		if e.Sentinel.UseCacheTime != c.want {
			t.Errorf("%d options: UseCacheTime %v, want %v", len(c.opts), e.Sentinel.UseCacheTime, c.want)
		}
	}
}
