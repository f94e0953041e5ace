// Command watchclient follows one Nacos document with
// sentinel.WatchNacosFunc for nacos_outage_test.go, in a process of its own
// built without -race (nacos-sdk-go v2.3.5 races with itself when it
// reconnects). It prints "applied <content>" for every document it
// accepts and the watcher's JSON log lines, and stops when its input ends.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/gingov/gingov/logging"
	"github.com/gingov/gingov/ratelimit/sentinel"
)

func main() {
	server := flag.String("server", "", "Nacos HTTP host:port")
	namespace := flag.String("namespace", "", "namespace ID")
	dataID := flag.String("data-id", "", "data ID")
	dir := flag.String("dir", "", "SDK log and cache dir")
	interval := flag.Duration("interval", 200*time.Millisecond, "poll interval")
	flag.Parse()
	var mu sync.Mutex // one writer of stdout for both kinds of line
	out := writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return os.Stdout.Write(p)
	})
	apply := func(b []byte) error {
		if strings.HasPrefix(string(b), "bad") {
			return errors.New("invalid document")
		}
		_, err := fmt.Fprintf(out, "applied %s\n", b)
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	wait, err := sentinel.WatchNacosFunc(ctx, sentinel.NacosSource{Addr: *server, Namespace: *namespace, DataID: *dataID, Dir: *dir},
		apply, sentinel.WithPollInterval(*interval), sentinel.WithLogger(logging.New(out, nil)))
	if err != nil {
		fmt.Fprintf(out, "err %v\n", err)
		os.Exit(1)
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
	cancel()
	wait()
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
