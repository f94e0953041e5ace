package testenv

import (
	"regexp"
	"strings"
	"testing"
)

// logTime matches the time field of a JSON log line.
var logTime = regexp.MustCompile(`"time":"[^"]*",`)

// LogLines returns the JSON log lines of logs that contain substr, each
// without its "time" field, so that a test can compare them whole.
func LogLines(logs, substr string) string {
	var b strings.Builder
	for line := range strings.Lines(logs) {
		if strings.Contains(line, substr) {
			b.WriteString(logTime.ReplaceAllString(line, ""))
		}
	}
	return b.String()
}

// WantLogLines fails t unless the lines of logs that contain substr, less
// their time, are want (each without its newline), in that order.
func WantLogLines(t testing.TB, logs, substr string, want ...string) {
	t.Helper()
	w := ""
	if len(want) > 0 {
		w = strings.Join(want, "\n") + "\n"
	}
	if got := LogLines(logs, substr); got != w {
		t.Errorf("log lines with %q:\n%s\nwant:\n%s", substr, got, w)
	}
}
