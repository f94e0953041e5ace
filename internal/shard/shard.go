// Package shard is gingov's one sharded map: string keys spread by a seeded
// hash over a fixed number of shards, each a plain map behind its own
// mutex on its own cache line, so that keys do not contend with each
// other. Callers lock a shard and use its map directly, which keeps their
// own policies (eviction, queueing) next to the data they guard.
package shard

import (
	"hash/maphash"
	"sync"
)

// N is the number of shards of a Map.
const N = 64

// Map is a sharded map from string keys to V. The zero Map is not usable:
// build it with New.
type Map[V any] struct {
	seed   maphash.Seed
	shards [N]Shard[V]
}

// Shard is one shard: lock it (Lock/Unlock) around every use of M.
type Shard[V any] struct {
	sync.Mutex
	M map[string]V
	_ [64 - 16]byte // a mutex and a map pointer: keep shards on separate cache lines
}

// New returns an empty Map.
func New[V any]() *Map[V] {
	m := &Map[V]{seed: maphash.MakeSeed()}
	for i := range m.shards {
		m.shards[i].M = make(map[string]V)
	}
	return m
}

// Shard returns the shard that holds key.
func (m *Map[V]) Shard(key string) *Shard[V] {
	return &m.shards[maphash.String(m.seed, key)%N]
}

// Len returns how many keys the map holds, locking one shard at a time.
func (m *Map[V]) Len() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.Lock()
		n += len(s.M)
		s.Unlock()
	}
	return n
}

// PerShard is the bound per shard that keeps a map of at most maxKeys keys
// (rounded up to a multiple of N, at least one per shard).
func PerShard(maxKeys int) int { return max(1, (maxKeys+N-1)/N) }
