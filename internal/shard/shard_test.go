package shard

import (
	"strconv"
	"sync"
	"testing"
	"unsafe"
)

func TestShardsSpreadAndCount(t *testing.T) {
	m := New[int]()
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				k := strconv.Itoa(g*1000 + i)
				s := m.Shard(k)
				s.Lock()
				s.M[k]++
				s.Unlock()
			}
		}()
	}
	wg.Wait()
	if n := m.Len(); n != 4000 {
		t.Fatalf("Len = %d, want 4000", n)
	}
	used := 0
	for i := range m.shards {
		if len(m.shards[i].M) > 0 {
			used++
		}
	}
	if used < N/2 {
		t.Fatalf("4000 keys landed in %d of %d shards", used, N)
	}
	first := m.Shard("a")
	for range 10 {
		if m.Shard("a") != first {
			t.Fatal("one key, two shards")
		}
	}
}

func TestShardSize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("the padding is sized for 64-bit pointers")
	}
	if s := unsafe.Sizeof(Shard[int]{}); s != 64 {
		t.Fatalf("a shard is %d bytes, want one 64-byte cache line", s)
	}
}

func TestPerShard(t *testing.T) {
	for _, c := range []struct{ max, want int }{{0, 1}, {1, 1}, {64, 1}, {65, 2}, {100_000, 1563}} {
		if got := PerShard(c.max); got != c.want {
			t.Errorf("PerShard(%d) = %d, want %d", c.max, got, c.want)
		}
	}
}
