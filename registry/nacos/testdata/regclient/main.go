// Command regclient drives a nacos.Registry from its standard input, for
// the tests that take the Nacos server down under a live client. It is
// built without the race detector: nacos-sdk-go v2.3.5 has data races of
// its own in its reconnection code (see outage_test.go).
//
// Commands, one a line:
//
//	register NAME ADDR WAIT     -> "ok register" | "err register MESSAGE"
//	deregister NAME ADDR WAIT   -> "ok deregister" | "err deregister MESSAGE"
//	watch NAME                  -> "watch NAME ADDR,ADDR" for each set
//
// and "event KIND" for each registration event. At the end of its input it
// closes the Registry and exits.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/gingov/gingov/registry"
	"github.com/gingov/gingov/registry/nacos"
)

func main() {
	server := flag.String("server", "", "Nacos HTTP host:port")
	dir := flag.String("dir", os.TempDir(), "SDK log and cache dir")
	flag.Parse()
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Printf(format+"\n", args...)
	}
	r, err := nacos.New([]string{*server},
		nacos.WithTimeout(2*time.Second),
		nacos.WithLogDir(*dir+"/log"),
		nacos.WithCacheDir(*dir+"/cache"),
		nacos.WithOnEvent(func(_ context.Context, e registry.Event) { say("event %s", e.Kind) }),
		nacos.WithLogger(slog.New(slog.NewJSONHandler(io.Discard, nil))),
	)
	if err != nil {
		say("err new %v", err)
		os.Exit(1)
	}
	ctx, stop := context.WithCancel(context.Background())
	var watches sync.WaitGroup
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		switch {
		case len(f) == 4 && (f[0] == "register" || f[0] == "deregister"):
			wait, err := time.ParseDuration(f[3])
			if err != nil {
				say("err %s %v", f[0], err)
				continue
			}
			ins := &registry.ServiceInstance{Name: f[1], Address: f[2]}
			c, cancel := context.WithTimeout(ctx, wait)
			if f[0] == "register" {
				err = r.Register(c, ins)
			} else {
				err = r.Deregister(c, ins)
			}
			cancel()
			if err != nil {
				say("err %s %v", f[0], err)
			} else {
				say("ok %s", f[0])
			}
		case len(f) == 2 && f[0] == "watch":
			w, err := r.Watch(ctx, f[1])
			if err != nil {
				say("err watch %v", err)
				continue
			}
			watches.Add(1)
			go func() {
				defer watches.Done()
				for {
					list, err := w.Next()
					if err != nil {
						return
					}
					addrs := make([]string, len(list))
					for i, in := range list {
						addrs[i] = in.Address
					}
					say("watch %s %s", f[1], strings.Join(addrs, ","))
				}
			}()
		default:
			say("err unknown command %q", in.Text())
		}
	}
	stop()
	watches.Wait()
	if err := r.Close(); err != nil {
		say("err close %v", err)
		os.Exit(1)
	}
}
