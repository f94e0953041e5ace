package eureka

import (
	"log/slog"
	"testing"

	"github.com/gingov/gingov/logging"
)

// No logger, or a nil one, is the kit's JSON logger, never slog.Default()'s
// text; a logger given is used as is.
func TestNilLoggerIsTheKitDefault(t *testing.T) {
	def := logging.Default()
	for _, opts := range [][]Option{nil, {WithLogger(nil)}} {
		e, err := New([]string{"http://127.0.0.1:1/eureka"}, opts...)
		if err != nil {
			t.Fatal(err)
		}
		if e.logger != def {
			t.Errorf("%d options: not logging.Default()", len(opts))
		}
		_ = e.Close()
	}
	own := slog.New(slog.DiscardHandler)
	e, err := New([]string{"http://127.0.0.1:1/eureka"}, WithLogger(own))
	if err != nil || e.logger != own {
		t.Fatalf("WithLogger(own): %v, logger replaced: %v", err, e.logger != own)
	}
	_ = e.Close()
}
