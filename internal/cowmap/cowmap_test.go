package cowmap

import (
	"sync"
	"testing"
)

func TestMap(t *testing.T) {
	var m Map[string, int]
	m.Limit = 2
	if _, ok := m.Load("a"); ok {
		t.Fatal("empty map has a")
	}
	if v, loaded := m.LoadOrStore("a", 1); v != 1 || loaded {
		t.Fatalf("first store: %d %v", v, loaded)
	}
	if v, loaded := m.LoadOrStore("a", 2); v != 1 || !loaded {
		t.Fatalf("second store of a: %d %v; want the first value", v, loaded)
	}
	m.LoadOrStore("b", 2)
	if v, loaded := m.LoadOrStore("c", 3); v != 3 || loaded {
		t.Fatalf("store past the limit: %d %v", v, loaded)
	}
	if _, ok := m.Load("c"); ok || m.Len() != 2 {
		t.Fatalf("limit not held: len %d", m.Len())
	}
}

func TestMapConcurrent(t *testing.T) {
	var m Map[int, int]
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				if v, _ := m.LoadOrStore(i, i*10); v != i*10 {
					t.Errorf("key %d: value %d", i, v)
				}
			}
		}()
	}
	wg.Wait()
	if m.Len() != 100 {
		t.Fatalf("len %d; want 100", m.Len())
	}
}
