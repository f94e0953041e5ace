package errcode_test

import (
	"testing"

	"github.com/gin-gonic/gin"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// Test mode keeps gin's debug route listing off stdout, where it would
	// break the checked output of the examples.
	gin.SetMode(gin.TestMode)
	goleak.VerifyTestMain(m)
}
