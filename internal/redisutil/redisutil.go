// Package redisutil holds the Redis helpers shared by the kit's packages.
package redisutil

import "github.com/redis/go-redis/v9"

// IsNil reports whether rdb is nil or a typed nil client (a nil
// *redis.Client, *redis.ClusterClient or *redis.Ring in the interface),
// which would panic on first use.
func IsNil(rdb redis.UniversalClient) bool {
	switch c := rdb.(type) {
	case nil:
		return true
	case *redis.Client:
		return c == nil
	case *redis.ClusterClient:
		return c == nil
	case *redis.Ring:
		return c == nil
	}
	return false
}
