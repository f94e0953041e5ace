package testenv_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gingov/gingov/internal/testenv"
)

// TestRedisCluster starts a real 3-master cluster and checks, with the
// go-redis cluster client gingov's limiter uses, what the limiter relies on:
// routing by slot, hash tags, and Lua on one key.
func TestRedisCluster(t *testing.T) {
	start := time.Now()
	c := testenv.StartRedisCluster(t, 3)
	t.Logf("3-master redis cluster on %v started in %v", c.Addrs, time.Since(start).Round(time.Millisecond))

	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// 100 keys spread over the slots, so over every master.
	for i := range 100 {
		k := fmt.Sprintf("gingov:cluster:%d", i)
		if err := rdb.Set(ctx, k, i, time.Minute).Err(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
	}
	for i := range 100 {
		k := fmt.Sprintf("gingov:cluster:%d", i)
		if v, err := rdb.Get(ctx, k).Int(); err != nil || v != i {
			t.Fatalf("GET %s = %d, %v; want %d", k, v, err, i)
		}
	}
	var mu sync.Mutex
	sizes := map[string]int64{}
	err := rdb.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		n, err := m.DBSize(ctx).Result()
		mu.Lock()
		sizes[m.Options().Addr] = n
		mu.Unlock()
		return err
	})
	if err != nil {
		t.Fatalf("DBSIZE on masters: %v", err)
	}
	var total int64
	for addr, n := range sizes {
		if n == 0 {
			t.Errorf("master %s holds none of the 100 keys: %v", addr, sizes)
		}
		total += n
	}
	if len(sizes) != 3 || total != 100 {
		t.Fatalf("keys per master = %v; want 3 masters holding 100 keys", sizes)
	}

	// A hash tag pins keys to one slot, so one node, so one Lua script.
	a, errA := rdb.ClusterKeySlot(ctx, "{user:1}:a").Result()
	b, errB := rdb.ClusterKeySlot(ctx, "{user:1}:b").Result()
	if errA != nil || errB != nil || a != b {
		t.Fatalf("CLUSTER KEYSLOT {user:1}:a = %d, %v; {user:1}:b = %d, %v; want the same slot", a, errA, b, errB)
	}
	ma, errA := rdb.MasterForKey(ctx, "{user:1}:a")
	mb, errB := rdb.MasterForKey(ctx, "{user:1}:b")
	if errA != nil || errB != nil || ma.Options().Addr != mb.Options().Addr {
		t.Fatalf("masters for {user:1}:a and {user:1}:b differ (%v, %v)", errA, errB)
	}
	if err := rdb.MSet(ctx, "{user:1}:a", "1", "{user:1}:b", "2").Err(); err != nil {
		t.Fatalf("MSET with one hash tag: %v", err)
	}

	v, err := rdb.Eval(ctx, "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('INCR', KEYS[1])",
		[]string{"{user:1}:lua"}, 41).Int()
	if err != nil || v != 42 {
		t.Fatalf("EVAL on one key = %d, %v; want 42", v, err)
	}

	// Topology as a client sees it: 3 masters covering every slot
	// (CLUSTER SHARDS replaces the deprecated CLUSTER SLOTS in Redis 7).
	shards, err := rdb.ClusterShards(ctx).Result()
	if err != nil {
		t.Fatalf("CLUSTER SHARDS: %v", err)
	}
	covered := int64(0)
	owners := map[string]bool{}
	for _, s := range shards {
		for _, r := range s.Slots {
			covered += r.End - r.Start + 1
		}
		if len(s.Nodes) != 1 || s.Nodes[0].Role != "master" || s.Nodes[0].Health != "online" {
			t.Errorf("shard %v has nodes %+v; want 1 online master, no replicas", s.Slots, s.Nodes)
			continue
		}
		addr := net.JoinHostPort(s.Nodes[0].IP, strconv.FormatInt(s.Nodes[0].Port, 10))
		owners[addr] = true
		if !slices.Contains(c.Addrs, addr) {
			t.Errorf("shard %v served by %s, not one of %v", s.Slots, addr, c.Addrs)
		}
	}
	if covered != 16384 || len(owners) != 3 {
		t.Fatalf("CLUSTER SHARDS covers %d slots on %d masters; want 16384 on 3", covered, len(owners))
	}
	nodes, err := rdb.ClusterNodes(ctx).Result()
	if err != nil {
		t.Fatalf("CLUSTER NODES: %v", err)
	}
	masters := 0
	for _, line := range strings.Split(strings.TrimSpace(nodes), "\n") {
		if f := strings.Fields(line); len(f) > 2 && slices.Contains(strings.Split(f[2], ","), "master") {
			masters++
		}
		if strings.Contains(line, "fail") {
			t.Errorf("CLUSTER NODES reports a failure: %s", line)
		}
	}
	if masters != 3 {
		t.Fatalf("CLUSTER NODES lists %d masters; want 3:\n%s", masters, nodes)
	}
	if err := rdb.Close(); err != nil {
		t.Fatalf("close cluster client: %v", err)
	}

	// KillNode is what outage tests use: the node must really be gone.
	c.KillNode(2)
	pctx, pcancel := context.WithTimeout(context.Background(), time.Second)
	defer pcancel()
	if err := testenv.Ping(pctx, c.Addrs[2]); err == nil {
		t.Fatal("PING answered after KillNode")
	}
	if got := c.Addr(); !slices.Equal(got, c.Addrs) {
		t.Fatalf("Addr() = %v; want %v", got, c.Addrs)
	}
}

// TestDo checks the harness's own RESP client against a plain server.
func TestDo(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, tc := range []struct {
		args    []string
		want    string
		wantErr string
	}{
		{args: []string{"SET", "k", "a b\r\nc"}, want: "OK"},
		{args: []string{"GET", "k"}, want: "a b\r\nc"},
		{args: []string{"INCR", "n"}, want: "1"},
		{args: []string{"GET", "missing"}, wantErr: "nil reply"},
		{args: []string{"NOSUCHCOMMAND"}, wantErr: "ERR unknown command"},
		{args: []string{"CLUSTER", "INFO"}, wantErr: "cluster support disabled"},
	} {
		got, err := testenv.Do(ctx, r.Addr, tc.args...)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Do%q = %q, %v; want error containing %q", tc.args, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Do%q = %q, %v; want %q", tc.args, got, err, tc.want)
		}
	}
}
