package registry

import (
	"context"
	"os"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// The drain wait lasts the whole delay when nothing cuts it short.
func TestWaitDrainFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel() // Run's context has ended: that starts the drain, it must not end it
		start := time.Now()
		if !waitDrain(ctx, time.Hour) || time.Since(start) != time.Hour {
			t.Fatalf("waited %s; want the whole hour", time.Since(start))
		}
	})
}

// The cancel function of SignalContext cuts a drain short: the wait ends
// at once instead of after the delay.
func TestWaitDrainCutByCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, stop := signalContext(t.Context(), make(chan os.Signal), func() {})
		start := time.Now()
		done := make(chan bool, 1)
		go func() { done <- waitDrain(ctx, time.Hour) }()
		time.Sleep(time.Minute)
		stop()
		if full := <-done; full || time.Since(start) != time.Minute {
			t.Fatalf("drain full=%v after %s; want cut after a minute", full, time.Since(start))
		}
		if ctx.Err() == nil {
			t.Fatal("SignalContext's context still live after cancel")
		}
	})
}

// The end of SignalContext's parent cuts the drain short too.
func TestWaitDrainCutByParent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		parent, cancelParent := context.WithCancel(t.Context())
		ctx, stop := signalContext(parent, make(chan os.Signal), func() {})
		defer stop()
		done := make(chan bool, 1)
		go func() { done <- waitDrain(ctx, time.Hour) }()
		time.Sleep(time.Second)
		cancelParent()
		synctest.Wait()
		select {
		case full := <-done:
			if full {
				t.Fatal("drain ran its whole delay")
			}
		default:
			t.Fatal("drain still waiting after the parent ended")
		}
	})
}

// A second signal, after the first ended the context, cuts the drain
// short; the signals are released after it.
func TestSignalContextSecondSignalCutsDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sigs := make(chan os.Signal)
		released := make(chan struct{})
		ctx, stop := signalContext(t.Context(), sigs, func() { close(released) })
		defer stop()
		sigs <- syscall.SIGTERM
		synctest.Wait()
		if ctx.Err() == nil {
			t.Fatal("context not done after the first signal")
		}
		start := time.Now()
		done := make(chan bool, 1)
		go func() { done <- waitDrain(ctx, time.Hour) }()
		time.Sleep(2 * time.Second)
		sigs <- syscall.SIGTERM
		if full := <-done; full || time.Since(start) != 2*time.Second {
			t.Fatalf("drain full=%v after %s; want cut after 2 s", full, time.Since(start))
		}
		synctest.Wait()
		select {
		case <-released:
		default:
			t.Fatal("signal handling not released after the second signal")
		}
	})
}

// SignalContext itself ends its context at a real SIGTERM.
func TestSignalContextSIGTERM(t *testing.T) {
	ctx, stop := SignalContext(context.Background())
	defer stop()
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("context not done after SIGTERM")
	}
}
