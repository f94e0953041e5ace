package redisutil

import (
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestIsNil(t *testing.T) {
	for _, tc := range []struct {
		name string
		rdb  redis.UniversalClient
		want bool
	}{
		{"nil", nil, true},
		{"typed nil client", (*redis.Client)(nil), true},
		{"typed nil cluster", (*redis.ClusterClient)(nil), true},
		{"typed nil ring", (*redis.Ring)(nil), true},
		{"client", redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), false},
	} {
		if got := IsNil(tc.rdb); got != tc.want {
			t.Errorf("%s: IsNil = %v, want %v", tc.name, got, tc.want)
		}
	}
}
