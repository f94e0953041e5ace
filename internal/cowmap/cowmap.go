// Package cowmap is a copy-on-write map for caches that are read on every
// request and written rarely (label sets, span names): a read is one atomic
// load and a map lookup with no lock; a write copies the map under a mutex.
package cowmap

import (
	"sync"
	"sync/atomic"
)

// Map is a copy-on-write map holding at most its Limit entries (0: no
// limit); past it, Store keeps nothing and callers compute the value each
// time. The zero value is an empty map with no limit, ready to use.
type Map[K comparable, V any] struct {
	// Limit caps the number of entries; set it before first use.
	Limit int

	m  atomic.Pointer[map[K]V]
	mu sync.Mutex
}

// Load returns the value stored for k.
func (c *Map[K, V]) Load(k K) (V, bool) {
	if m := c.m.Load(); m != nil {
		v, ok := (*m)[k]
		return v, ok
	}
	var zero V
	return zero, false
}

// LoadOrStore returns the value stored for k, or stores v and returns it.
// When the map is full, v is returned and not stored. The second result
// reports whether the value was already there.
func (c *Map[K, V]) LoadOrStore(k K, v V) (V, bool) {
	if old, ok := c.Load(k); ok {
		return old, true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var old map[K]V
	if p := c.m.Load(); p != nil {
		old = *p
	}
	if cur, ok := old[k]; ok {
		return cur, true
	}
	if c.Limit > 0 && len(old) >= c.Limit {
		return v, false
	}
	m := make(map[K]V, len(old)+1)
	for kk, vv := range old {
		m[kk] = vv
	}
	m[k] = v
	c.m.Store(&m)
	return v, false
}

// Len returns the number of entries.
func (c *Map[K, V]) Len() int {
	if m := c.m.Load(); m != nil {
		return len(*m)
	}
	return 0
}
