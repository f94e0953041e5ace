//go:build !unix

package deadline_test

import "testing"

// cpuTime reports nothing where getrusage is missing.
func cpuTime(*testing.B) func() { return func() {} }
