package setup

import (
	"context"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// watchEtcd reads the document under key, applies it (a missing or empty
// document at start means none; an invalid one is an error), then follows
// it with etcd's Watch until ctx is done, and re-reads it every interval as
// a safety net against a stalled watch and to notice an outage. Every call
// is bounded by the source's timeout; a server that stops answering keeps
// what is in force (WARN once) and is read again with backoff until it
// answers.
func watchEtcd(ctx context.Context, d *EtcdDoc, key string, interval time.Duration, a *docApplier) (wait func(), err error) {
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = DefaultSourceTimeout
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   d.Endpoints,
		Username:    d.Username,
		Password:    d.Password,
		DialTimeout: timeout,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", strings.Join(d.Endpoints, ","), err)
	}
	get := func() (*clientv3.GetResponse, error) {
		rctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return cli.Get(rctx, key)
	}
	resp, err := get()
	if err != nil {
		_ = cli.Close()
		return nil, fmt.Errorf("read %s from %s: %w", key, strings.Join(d.Endpoints, ","), err)
	}
	if len(resp.Kvs) > 0 && len(resp.Kvs[0].Value) > 0 {
		if err := a.Apply(resp.Kvs[0].Value); err != nil {
			_ = cli.Close()
			return nil, err
		}
	}
	rev := resp.Header.Revision
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() { _ = cli.Close() }()
		startWatch := func() (clientv3.WatchChan, context.CancelFunc) {
			wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
			return cli.Watch(wctx, key, clientv3.WithRev(rev+1)), cancel
		}
		var (
			watch       clientv3.WatchChan
			cancelWatch = func() {}
			attempt     int
			reread      = time.NewTimer(interval)
		)
		defer func() { cancelWatch() }()
		defer reread.Stop()
		for {
			if watch == nil {
				watch, cancelWatch = startWatch()
			}
			select {
			case <-ctx.Done():
				return
			case wr, ok := <-watch:
				if !ok || wr.Err() != nil {
					// Lost leader, compaction, closed stream: read again
					// now, then watch from the revision read.
					cancelWatch()
					watch = nil
					reread.Reset(0)
					continue
				}
				a.Reached()
				for _, ev := range wr.Events {
					rev = ev.Kv.ModRevision
					if ev.Type == clientv3.EventTypeDelete || len(ev.Kv.Value) == 0 {
						a.Missing()
					} else {
						_ = a.Apply(ev.Kv.Value) // logged by Apply
					}
				}
			case <-reread.C:
				resp, err := get()
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					a.Failed(err)
					reread.Reset(sourceBackoff.Delay(attempt))
					attempt++
					continue
				}
				a.Reached()
				attempt = 0
				if watch == nil {
					rev = resp.Header.Revision
				}
				if len(resp.Kvs) == 0 || len(resp.Kvs[0].Value) == 0 {
					a.Missing()
				} else {
					_ = a.Apply(resp.Kvs[0].Value) // logged by Apply
				}
				reread.Reset(interval)
			}
		}
	}()
	return func() { <-done }, nil
}
