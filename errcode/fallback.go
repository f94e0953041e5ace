package errcode

import (
	"errors"
	"fmt"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/internal/reqstate"
)

// Fallback serves a request that governance rejected (an open breaker, a
// flow-control block): a cached or reduced answer instead of the error
// envelope. cause says why the request was rejected. A fallback that
// returns an error, panics, or writes nothing leaves the answer to the
// envelope.
type Fallback func(c *gin.Context, cause error) error

// ErrFallbackPanicked is wrapped by the error of [RunFallback] when the
// fallback panicked.
var ErrFallbackPanicked = errors.New("errcode: fallback panicked")

// RunFallback runs fb for a rejected request and reports whether it
// answered it; when it did, the rest of the chain is aborted. A fallback
// that fails, returning an error or panicking (err wraps
// [ErrFallbackPanicked]), is reported in err for the caller to log; it
// answered only if it wrote a response before failing. A panic with
// http.ErrAbortHandler goes on up, as net/http expects.
func RunFallback(c *gin.Context, fb Fallback, cause error) (answered bool, err error) {
	defer func() {
		if p := recover(); p != nil {
			if reqstate.ClassifyPanic(p) == reqstate.PanicAbort {
				panic(p)
			}
			err = fmt.Errorf("%w: %v", ErrFallbackPanicked, p)
			answered = c.Writer.Written()
		}
		if answered {
			c.Abort()
		}
	}()
	err = fb(c, cause)
	return c.Writer.Written(), err
}
