package eureka_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain runs every test of the package under goleak.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
