package deadline

import (
	"math"
	"net/http"
	"strconv"
	"testing"
	"time"
)

func TestParseGRPCTimeout(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"100m", 100 * time.Millisecond, true},
		{"2S", 2 * time.Second, true},
		{"1H", time.Hour, true},
		{"3M", 3 * time.Minute, true},
		{"250u", 250 * time.Microsecond, true},
		{"7n", 7, true},
		{"00000001S", time.Second, true},
		{"99999999S", 99999999 * time.Second, true},
		{"99999999H", math.MaxInt64, true}, // too long for a Duration: shortens nothing
		{"2562047H", 2562047 * time.Hour, true},
		{"2562048H", math.MaxInt64, true},
		{"", 0, false},
		{"m", 0, false},
		{"1", 0, false},
		{"0m", 0, false},
		{"00000000S", 0, false},
		{"123456789m", 0, false},
		{"1h", 0, false},
		{"1s", 0, false},
		{"1.5S", 0, false},
		{"-1S", 0, false},
		{"+1S", 0, false},
		{" 1S", 0, false},
		{"1S ", 0, false},
		{"1 S", 0, false},
		{"1SS", 0, false},
		{"１S", 0, false}, // a full-width digit
		{"0x1S", 0, false},
	} {
		got, ok := parseGRPCTimeout(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseGRPCTimeout(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParseRequestTimeout(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"1", time.Millisecond, true},
		{"250", 250 * time.Millisecond, true},
		{"000250", 250 * time.Millisecond, true},
		{"999999999", 999999999 * time.Millisecond, true},
		{"250ms", 250 * time.Millisecond, true},
		{"1.5s", 1500 * time.Millisecond, true},
		{".5s", 500 * time.Millisecond, true},
		{"1m30s", 90 * time.Second, true},
		{"1ns", 1, true},
		{"1000000000", 0, false}, // 10 digits
		{"0", 0, false},
		{"000", 0, false},
		{"0s", 0, false},
		{"", 0, false},
		{"-1", 0, false},
		{"+1", 0, false},
		{"-1s", 0, false},
		{"+1s", 0, false},
		{" 1", 0, false},
		{"1 ", 0, false},
		{"1e3", 0, false},
		{"1 s", 0, false},
		{"s", 0, false},
		{"1x", 0, false},
		{"3000000h", 0, false}, // overflows ParseDuration
		{"100000000000000000000000000000ms", 0, false},
		{"1000000000000000000000000000000000ms", 0, false}, // > 32 bytes
	} {
		got, ok := parseRequestTimeout(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseRequestTimeout(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// FuzzParseHeaders checks the two header parsers: no panic, only positive
// budgets, the documented syntax only, and Propagate's format read back.
func FuzzParseHeaders(f *testing.F) {
	for _, s := range []string{"100m", "2S", "1H", "99999999H", "0m", "250", "1.5s", "-1s", "", "1e3", "9999999999", " 1S"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if d, ok := parseGRPCTimeout(s); ok {
			if d <= 0 {
				t.Fatalf("grpc-timeout %q: budget %v", s, d)
			}
			if len(s) < 2 || len(s) > 9 {
				t.Fatalf("grpc-timeout %q accepted: wrong length", s)
			}
			for i := 0; i < len(s)-1; i++ {
				if s[i] < '0' || s[i] > '9' {
					t.Fatalf("grpc-timeout %q accepted: not digits", s)
				}
			}
		}
		if d, ok := parseRequestTimeout(s); ok {
			if d <= 0 || len(s) > 32 {
				t.Fatalf("Request-Timeout %q: budget %v", s, d)
			}
			if c := s[0]; (c < '0' || c > '9') && c != '.' {
				t.Fatalf("Request-Timeout %q accepted with a leading %q", s, c)
			}
			// Propagate's own format reads back as itself.
			if d >= time.Millisecond && d < 1e9*time.Millisecond {
				ms := strconv.FormatInt(d.Milliseconds(), 10)
				if back, ok := parseRequestTimeout(ms); !ok || back != d.Truncate(time.Millisecond) {
					t.Fatalf("%q read back as %v, %v", ms, back, ok)
				}
			}
		}
		b, ok := callerBudget(http.Header{Header: {s}, GRPCHeader: {s}})
		if ok && b <= 0 {
			t.Fatalf("callerBudget(%q) = %v", s, b)
		}
	})
}
