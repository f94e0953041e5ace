package logging

import (
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gingov/gingov/internal/jsonstr"
)

// The encoder below writes JSON exactly as slog.JSONHandler does, for the
// access log's own fast path; jsonenc_test.go checks it against slog.

// appendJSONString appends s quoted and escaped as slog.JSONHandler writes
// strings.
func appendJSONString(b []byte, s string) []byte { return jsonstr.Append(b, s, jsonstr.Slog) }

// appendJSONFloat appends f as encoding/json (and so slog) writes a finite
// float64: shortest form, exponent only below 1e-6 or from 1e21, "e-09"
// shortened to "e-9".
func appendJSONFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// appendJSONTime appends t as slog.JSONHandler writes the record time
// (RFC 3339 with nanoseconds, trailing zeros trimmed). The date, clock and
// offset of the last second written are kept: lines in the same second and
// zone format only their fraction.
func appendJSONTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	sec, loc := t.Unix(), t.Location()
	ts := lastSecond.Load()
	if ts == nil || ts.unix != sec || ts.loc != loc {
		if y := t.Year(); y < 0 || y > 9999 { // not four digits: no cache
			b = t.Round(0).AppendFormat(b, time.RFC3339Nano)
			return append(b, '"')
		}
		f := t.Truncate(time.Second).Format(time.RFC3339)
		ts = &timeSecond{unix: sec, loc: loc, clock: f[:len("2006-01-02T15:04:05")], zone: f[len("2006-01-02T15:04:05"):]}
		lastSecond.Store(ts)
	}
	b = append(b, ts.clock...)
	if ns := t.Nanosecond(); ns != 0 {
		var d [10]byte
		d[0] = '.'
		for i := 9; i > 0; i-- {
			d[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := len(d)
		for d[n-1] == '0' {
			n--
		}
		b = append(b, d[:n]...)
	}
	b = append(b, ts.zone...)
	return append(b, '"')
}

// timeSecond is one second of appendJSONTime's output: "2006-01-02T15:04:05"
// and "Z" or "-07:00", for the instant unix in loc.
type timeSecond struct {
	unix        int64
	loc         *time.Location
	clock, zone string
}

// lastSecond is the second appendJSONTime wrote last.
var lastSecond atomic.Pointer[timeSecond]
