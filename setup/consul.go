package setup

import (
	"context"
	"fmt"
	"net/http"

	"github.com/hashicorp/consul/api"
)

// watchConsul reads the document under key, applies it (a missing or empty
// document at start means none; an invalid one is an error), then follows
// it with blocking queries (each waiting at most the source's wait, and
// bounded by wait plus Consul's jitter plus the timeout) until ctx is
// done. An agent that stops answering keeps what is in force (WARN once)
// and is read again with backoff until it answers; then, and when its
// index went backwards (an agent that came back empty), the watch starts
// over from the current state.
func watchConsul(ctx context.Context, d *ConsulDoc, key string, a *docApplier) (wait func(), err error) {
	timeout, waitTime := d.Timeout, d.Wait
	if timeout <= 0 {
		timeout = DefaultSourceTimeout
	}
	if waitTime <= 0 {
		waitTime = DefaultConsulWait
	}
	conf := api.DefaultNonPooledConfig()
	conf.Address, conf.Scheme, conf.Token, conf.Datacenter = d.Addr, "http", d.Token, d.Datacenter
	tr := conf.Transport
	tr.Proxy = nil // the agent is addressed directly
	conf.HttpClient = &http.Client{Transport: tr}
	client, err := api.NewClient(conf)
	if err != nil {
		return nil, fmt.Errorf("client for %s: %w", d.Addr, err)
	}
	kv := client.KV()
	read := func(index uint64) (*api.KVPair, *api.QueryMeta, error) {
		bound := timeout
		q := &api.QueryOptions{}
		if index > 0 {
			q.WaitIndex, q.WaitTime = index, waitTime
			bound += waitTime + waitTime/16 // Consul adds up to wait/16 of jitter
		}
		rctx, cancel := context.WithTimeout(ctx, bound)
		defer cancel()
		return kv.Get(key, q.WithContext(rctx))
	}
	pair, meta, err := read(0)
	if err != nil {
		tr.CloseIdleConnections()
		return nil, fmt.Errorf("read %s from %s: %w", key, d.Addr, err)
	}
	if pair != nil && len(pair.Value) > 0 {
		if err := a.Apply(pair.Value); err != nil {
			tr.CloseIdleConnections()
			return nil, err
		}
	}
	index := max(meta.LastIndex, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer tr.CloseIdleConnections()
		attempt := 0
		for {
			pair, meta, err := read(index)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				a.Failed(err)
				if !sleep(ctx, sourceBackoff.Delay(attempt)) {
					return
				}
				attempt++
				index = 0 // read the current state at once when it answers
				continue
			}
			a.Reached()
			attempt = 0
			switch {
			case index == 0 || meta.LastIndex < index:
				// After an outage, or an index that went backwards (the
				// agent lost its state): this answer is the current
				// state; block from it.
				index = max(meta.LastIndex, 1)
			case meta.LastIndex == index:
				continue // the wait ended without a change
			default:
				index = meta.LastIndex
			}
			if pair == nil || len(pair.Value) == 0 {
				a.Missing()
				continue
			}
			_ = a.Apply(pair.Value) // logged by Apply
		}
	}()
	return func() { <-done }, nil
}
