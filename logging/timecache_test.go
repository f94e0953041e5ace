package logging

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// slogTime is the record time as slog.JSONHandler writes it, quoted.
func slogTime(tm time.Time) string {
	var buf bytes.Buffer
	_ = slog.NewJSONHandler(&buf, nil).Handle(context.Background(), slog.NewRecord(tm, slog.LevelInfo, "", 0))
	return strings.TrimPrefix(strings.TrimSuffix(buf.String(), `,"level":"INFO","msg":""}`+"\n"), `{"time":`)
}

// appendJSONTime keeps the last second it formatted: a run of times within
// one second, across seconds, zones (the same instant in two zones), a
// daylight-saving change and years outside four digits must still come
// out as slog writes them.
func TestAppendJSONTimeCachedSecondMatchesSlog(t *testing.T) {
	zones := []*time.Location{time.UTC, time.Local, time.FixedZone("x", -(3*3600 + 30*60)), time.FixedZone("y", 5*3600+45*60)}
	if berlin, err := time.LoadLocation("Europe/Berlin"); err == nil {
		zones = append(zones, berlin)
	}
	var times []time.Time
	for _, base := range []time.Time{
		time.Now(), time.Date(2026, 3, 29, 0, 59, 59, 0, time.UTC), time.Date(2026, 10, 25, 0, 59, 58, 0, time.UTC),
		time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC), time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC),
		time.Date(9999, 12, 30, 23, 59, 59, 0, time.UTC), time.Date(0, 6, 1, 12, 0, 0, 0, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC),
	} {
		for _, d := range []time.Duration{0, 1, 10, 120 * time.Millisecond, 999999999, time.Second, time.Second + 5000, 2*time.Second + 100, 3 * time.Second} {
			times = append(times, base.Add(d))
		}
	}
	for i, tm := range times {
		for _, z := range zones {
			for _, tz := range []time.Time{tm.In(z), tm.In(z), tm.In(time.UTC), tm.In(z)} {
				if got, want := string(appendJSONTime(nil, tz)), slogTime(tz); got != want {
					t.Errorf("%d: appendJSONTime(%v) = %s, slog writes %s", i, tz, got, want)
				}
			}
		}
	}
}
