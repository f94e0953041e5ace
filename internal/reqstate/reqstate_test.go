package reqstate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type otherKey struct{}

// Ensure replaces the request by a copy with the new context, as
// WithContext would, in the one allocation of the node; the original
// request is left as it was.
func TestEnsureCopiesRequestInOneAllocation(t *testing.T) {
	req := httptest.NewRequest("POST", "/x?y=1", nil)
	req.Header.Set("X-A", "1")
	orig := *req
	c, _ := gin.CreateTestContext(httptest.NewRecorder())
	c.Request = req
	Ensure(c)
	got := c.Request
	if got == req || got.Method != "POST" || got.URL != req.URL || got.Header.Get("X-A") != "1" ||
		got.RemoteAddr != req.RemoteAddr || got.Body != req.Body || From(got.Context()) == nil {
		t.Fatalf("request %+v", got)
	}
	if req.Context() != orig.Context() || From(req.Context()) != nil {
		t.Fatal("the original request's context changed")
	}
	if n := testing.AllocsPerRun(100, func() {
		c.Request = req
		Ensure(c)
	}); n != 1 {
		t.Fatalf("Ensure: %v allocations, want 1", n)
	}
}

func TestEnsureAttachesOnceAndKeepsParent(t *testing.T) {
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), otherKey{}, "v"))
	c, _ := gin.CreateTestContext(httptest.NewRecorder())
	c.Request = httptest.NewRequest("GET", "/", nil).WithContext(parent)

	i := Ensure(c)
	i.RequestID = "r1"
	if j := Ensure(c); j != i {
		t.Fatal("Ensure attached a second Info")
	}
	ctx := c.Request.Context()
	if From(ctx).RequestID != "r1" || ctx.Value(otherKey{}) != "v" {
		t.Fatal("values lost")
	}
	// Cancellation flows through the node, and children of it see it, with
	// no goroutine left behind (goleak checks at the end).
	child, childCancel := context.WithTimeout(ctx, time.Hour)
	defer childCancel()
	cancel()
	select {
	case <-child.Done():
	case <-time.After(time.Second):
		t.Fatal("cancellation did not reach a child of the request context")
	}
	if From(context.Background()) != nil {
		t.Fatal("From on a bare context")
	}
}

func TestClassifyPanic(t *testing.T) {
	pipe := &net.OpError{Op: "write", Err: &os.SyscallError{Syscall: "write", Err: syscall.EPIPE}}
	cases := []struct {
		p    any
		want PanicKind
	}{
		{"boom", PanicServerError},
		{errors.New("x"), PanicServerError},
		{pipe, PanicBrokenPipe},
		{fmt.Errorf("wrapped: %w", syscall.ECONNRESET), PanicBrokenPipe},
		{http.ErrAbortHandler, PanicAbort},
	}
	for _, c := range cases {
		if got := ClassifyPanic(c.p); got != c.want {
			t.Errorf("ClassifyPanic(%v) = %v, want %v", c.p, got, c.want)
		}
	}
}

// ClientIP is Gin's, computed once for a request with an Info and on
// every call for one without.
func TestClientIPComputedOnce(t *testing.T) {
	c, _ := gin.CreateTestContext(httptest.NewRecorder())
	c.Request = httptest.NewRequest("GET", "/", nil)
	c.Request.Header.Set("X-Forwarded-For", "203.0.113.7, 10.0.0.1")
	want := c.ClientIP()
	if got := ClientIP(c); got != want || want != "203.0.113.7" {
		t.Fatalf("ClientIP without Info %q; Gin's %q", got, want)
	}
	c.Request.Header.Set("X-Forwarded-For", "198.51.100.1")
	if got := ClientIP(c); got != "198.51.100.1" {
		t.Fatalf("ClientIP without Info %q: not recomputed", got)
	}
	Ensure(c)
	if got := ClientIP(c); got != "198.51.100.1" {
		t.Fatalf("ClientIP %q", got)
	}
	c.Request.Header.Set("X-Forwarded-For", "192.0.2.99")
	if got := ClientIP(c); got != "198.51.100.1" {
		t.Fatalf("ClientIP %q: recomputed for a request with an Info", got)
	}
	if n := testing.AllocsPerRun(100, func() { ClientIP(c) }); n != 0 {
		t.Fatalf("%v allocations a call once computed", n)
	}
}

func TestClientIPEmptyComputedOnce(t *testing.T) {
	c, _ := gin.CreateTestContext(httptest.NewRecorder())
	c.Request = httptest.NewRequest("GET", "/", nil)
	c.Request.RemoteAddr = "not an address"
	Ensure(c)
	if ip := ClientIP(c); ip != "" {
		t.Fatalf("ClientIP = %q, want empty", ip)
	}
	c.Request.RemoteAddr = "192.0.2.9:1"
	if ip := ClientIP(c); ip != "" {
		t.Fatalf("ClientIP = %q after the first call, want the empty one kept", ip)
	}
}

// DeferToRecovery keeps its function only under NextRecovering, at any
// depth (deeper than one batch of frames too), and RunAfterRecovery runs
// the kept ones once, in order.
func TestDeferToRecovery(t *testing.T) {
	c, _ := gin.CreateTestContext(httptest.NewRecorder())
	c.Request = httptest.NewRequest("GET", "/", nil)
	var ran []string
	if DeferToRecovery(c, func(int) { ran = append(ran, "outside") }) {
		t.Fatal("kept without a recovering middleware above")
	}
	var deep func(c *gin.Context, n int) bool
	deep = func(c *gin.Context, n int) bool {
		if n == 0 {
			return DeferToRecovery(c, func(s int) { ran = append(ran, fmt.Sprint("deep ", s)) })
		}
		return deep(c, n-1)
	}
	var kept []bool
	h := func(c *gin.Context) {
		kept = append(kept, DeferToRecovery(c, func(s int) { ran = append(ran, fmt.Sprint("first ", s)) }), deep(c, 200))
	}
	// Run h under NextRecovering through a gin engine chain.
	r := gin.New()
	r.Use(func(c *gin.Context) {
		NextRecovering(c)
		RunAfterRecovery(c, 500)
		RunAfterRecovery(c, 501) // nothing left
	})
	r.GET("/", h)
	r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	if fmt.Sprint(kept) != "[true true]" || fmt.Sprint(ran) != "[first 500 deep 500]" {
		t.Fatalf("kept %v, ran %v", kept, ran)
	}
}

// IDBuffer hands out the room for a generated ID once: a string made over
// it must never change.
func TestIDBufferOnce(t *testing.T) {
	var i Info
	b := i.IDBuffer()
	if b == nil || len(b) != GeneratedIDLen {
		t.Fatalf("first IDBuffer: %v", b)
	}
	if b != &i.idBuf {
		t.Fatal("IDBuffer is not the Info's own room")
	}
	if again := i.IDBuffer(); again != nil {
		t.Fatal("IDBuffer handed out twice")
	}
}
