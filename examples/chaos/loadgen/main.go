// Command loadgen is the chaos suite's load generator: open-loop HTTP GET
// load at a fixed rate, spread round robin over one or more target URLs,
// from its own process so that the services under test share no Go
// runtime with it. Every request is sent on its schedule whether or not
// earlier ones have answered (up to -max-inflight at once; a request that
// would exceed it is recorded as skipped), so a slow or hung server shows
// up as latency and errors, not as a lower request rate.
//
// It waits until -start (Unix ns; default now), sends for -duration or
// until SIGTERM or SIGINT, waits for the requests in flight (each bounded
// by -timeout), then writes one CSV line per request sent to -out:
//
//	start_unix_ns,latency_ns,target,status,envelope,reason,error
//
// status is 0 when no HTTP answer came (error then says why: refused,
// reset, eof, timeout, skipped or other); envelope is 1 when the answer is
// a gingov error envelope (errcode.ContentType and a JSON object with a
// code, a reason, a message and a request ID), and reason is its reason.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gingov/gingov/errcode"
)

type record struct {
	start    int64 // unix ns
	latency  int64 // ns
	target   int
	status   int
	envelope bool
	reason   string
	err      string
}

func main() {
	var (
		targets  = flag.String("targets", "", "comma-separated URLs, requests go round robin over them")
		rate     = flag.Float64("rate", 100, "requests per second, in all")
		duration = flag.Duration("duration", 5*time.Second, "how long to send")
		start    = flag.Int64("start", 0, "Unix ns at which to start sending (0: now)")
		users    = flag.Int("users", 0, "send X-User-Id: u<i mod users> (0: no header)")
		timeout  = flag.Duration("timeout", 5*time.Second, "per-request timeout")
		maxIn    = flag.Int("max-inflight", 4000, "requests in flight at most")
		out      = flag.String("out", "", "CSV file to write (required)")
	)
	flag.Parse()
	urls := strings.Split(*targets, ",")
	if *targets == "" || *out == "" || *rate <= 0 || *duration <= 0 {
		fmt.Fprintln(os.Stderr, "loadgen: -targets, -out, a positive -rate and -duration are required")
		os.Exit(2)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, os.Interrupt)
	recs := run(stop, urls, *rate, *duration, time.Unix(0, *start), *users, *timeout, *maxIn)
	if err := write(*out, recs); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run(stop <-chan os.Signal, urls []string, rate float64, duration time.Duration, start time.Time, users int, timeout time.Duration, maxIn int) []record {
	client := &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConnsPerHost: 512,
			DisableCompression:  true,
			DialContext:         (&net.Dialer{Timeout: timeout}).DialContext,
		},
	}
	n := int(rate * duration.Seconds())
	recs := make([]record, n)
	interval := time.Duration(float64(time.Second) / rate)
	var (
		wg       sync.WaitGroup
		inflight atomic.Int64
	)
	time.Sleep(time.Until(start))
	t0 := time.Now()
	sent := 0
	timer := time.NewTimer(0)
loop:
	for i := range n {
		at := t0.Add(time.Duration(i) * interval)
		if d := time.Until(at); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-stop:
				break loop
			}
		}
		sent = i + 1
		r := &recs[i]
		r.target = i % len(urls)
		if inflight.Load() >= int64(maxIn) {
			r.start, r.err = time.Now().UnixNano(), "skipped"
			continue
		}
		inflight.Add(1)
		wg.Go(func() {
			defer inflight.Add(-1)
			call(client, urls[r.target], users, i, r)
		})
	}
	wg.Wait()
	return recs[:sent]
}

// call sends one request and fills r.
func call(client *http.Client, url string, users, i int, r *record) {
	begin := time.Now()
	r.start = begin.UnixNano()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		r.err = "other"
		return
	}
	if users > 0 {
		req.Header.Set("X-User-Id", "u"+strconv.Itoa(i%users))
	}
	resp, err := client.Do(req)
	if err != nil {
		r.latency = time.Since(begin).Nanoseconds()
		r.err = classify(err)
		return
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	r.latency = time.Since(begin).Nanoseconds()
	if err != nil {
		r.err = classify(err) // the answer was cut short: no answer
		return
	}
	r.status = resp.StatusCode
	r.envelope, r.reason = envelope(resp.Header.Get("Content-Type"), body)
}

// envelope reports whether body is a gingov error envelope, and its reason.
func envelope(contentType string, body []byte) (bool, string) {
	if contentType != errcode.ContentType {
		return false, ""
	}
	var e struct {
		Code      int    `json:"code"`
		Reason    string `json:"reason"`
		Message   string `json:"message"`
		RequestID string `json:"request_id"`
	}
	if json.Unmarshal(body, &e) != nil || e.Code == 0 || e.Reason == "" || e.Message == "" || e.RequestID == "" {
		return false, ""
	}
	return true, e.Reason
}

// classify names why a request got no answer.
func classify(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	return "other"
}

func write(path string, recs []record) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, r := range recs {
		env := 0
		if r.envelope {
			env = 1
		}
		fmt.Fprintf(w, "%d,%d,%d,%d,%d,%s,%s\n", r.start, r.latency, r.target, r.status, env, r.reason, r.err)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
