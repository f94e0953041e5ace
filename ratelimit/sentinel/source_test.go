package sentinel_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/logging"
	"github.com/gingov/gingov/ratelimit/sentinel"
)

// A bad document that stays in place is logged at ERROR and reported to the
// hook once, however many polls see it; a second, different bad document
// is logged once more; the next good one is logged at INFO as accepted, and
// no invalid document ever replaces the one in force. An unreadable file is
// a WARN once, until it is readable again.
func TestWatchFileLogsEachBadDocumentOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "doc")
		write := func(s string) {
			t.Helper()
			if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		var inForce string
		apply := func(b []byte) error {
			if strings.HasPrefix(string(b), "bad") {
				return errors.New("invalid document")
			}
			inForce = string(b)
			return nil
		}
		logs := &testenv.Buffer{}
		var events []error
		write("good 1")
		ctx, cancel := context.WithCancel(context.Background())
		wait, err := sentinel.WatchFileFunc(ctx, path, apply, sentinel.WithPollInterval(time.Second),
			sentinel.WithLogger(logging.New(logs, nil)),
			sentinel.WithOnReload(func(_ context.Context, e sentinel.Event) { events = append(events, e.Err) }))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { cancel(); wait() }()
		poll := func(n int) { time.Sleep(time.Duration(n)*time.Second + time.Millisecond); synctest.Wait() }

		write("bad A")
		poll(30)
		if n := strings.Count(logs.String(), `"level":"ERROR"`); n != 1 {
			t.Fatalf("%d ERROR lines for one bad document over 30 polls, want 1:\n%s", n, logs)
		}
		if inForce != "good 1" {
			t.Fatalf("a rejected document replaced the one in force: %q", inForce)
		}
		write("bad B")
		poll(30)
		if n := strings.Count(logs.String(), `"level":"ERROR"`); n != 2 {
			t.Fatalf("%d ERROR lines for two distinct bad documents, want 2:\n%s", n, logs)
		}
		write("bad A") // back to the first bad one: distinct from the last rejected
		poll(5)
		if n := strings.Count(logs.String(), `"level":"ERROR"`); n != 3 {
			t.Fatalf("%d ERROR lines after going back to the first bad document, want 3", n)
		}
		write("good 2")
		poll(5)
		if inForce != "good 2" {
			t.Fatalf("the good document was not applied: %q", inForce)
		}
		accepted := testenv.LogLines(logs.String(), `"msg":"document applied"`)
		if !strings.Contains(accepted, `"after_rejected":true`) || !strings.Contains(accepted, `"level":"INFO"`) {
			t.Fatalf("the acceptance after rejections was not logged at INFO:\n%s", logs)
		}
		if len(events) != 5 || events[0] != nil || events[1] == nil || events[2] == nil || events[3] == nil || events[4] != nil {
			t.Fatalf("hook events %v, want ok, 3 rejections, ok", events)
		}

		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		poll(20)
		if n := strings.Count(logs.String(), "document source unreachable"); n != 1 {
			t.Fatalf("%d WARN lines for a file missing over 20 polls, want 1:\n%s", n, logs)
		}
		write("good 2")
		poll(2)
		if !strings.Contains(logs.String(), "document source reachable again") {
			t.Fatal("the file's return was not logged")
		}
		if n := strings.Count(logs.String(), `"level":"ERROR"`); n != 3 || inForce != "good 2" {
			t.Fatalf("after the outage: %d ERROR lines, in force %q", n, inForce)
		}
	})
}
