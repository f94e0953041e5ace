package registry_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain is the registry package's one TestMain: every test of the
// package runs under goleak.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
