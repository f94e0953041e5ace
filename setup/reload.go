package setup

import (
	"context"
	"time"

	"github.com/gingov/gingov/ratelimit/sentinel"
)

// reloadFrom is Reload for a watcher of source, reporting each attempt to
// the WithOnReload hook.
func (ch *Chain) reloadFrom(ctx context.Context, source string) func([]byte) error {
	return func(data []byte) error {
		err := ch.Reload(data)
		if fn := ch.opts.onReload; fn != nil {
			fn(ctx, Event{Source: source, Err: err, Time: time.Now()})
		}
		return err
	}
}

// DefaultNacosGroup is the group of a NacosDoc without one: Sentinel's
// (and Nacos's) default group.
const DefaultNacosGroup = sentinel.DefaultNacosGroup

func (n *NacosDoc) group() string {
	if n.Group == "" {
		return DefaultNacosGroup
	}
	return n.Group
}
