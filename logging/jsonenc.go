package logging

import (
	"math"
	"strconv"
	"time"

	"github.com/gingov/gingov/internal/jsonstr"
)

// The encoder below writes JSON exactly as slog.JSONHandler does, for the
// access log's own fast path; jsonenc_test.go checks it against slog.

// appendJSONString appends s quoted and escaped as slog.JSONHandler writes
// strings.
func appendJSONString(b []byte, s string) []byte { return jsonstr.Append(b, s, jsonstr.Slog) }

// appendJSONKey appends "key": .
func appendJSONKey(b []byte, key string) []byte {
	b = append(b, ',')
	b = appendJSONString(b, key)
	return append(b, ':')
}

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

// appendJSONTime appends t as slog.JSONHandler writes the record time.
func appendJSONTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.Round(0).AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}
