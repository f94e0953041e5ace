package logging_test

import (
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/logging"
)

// A handler logs through FromContext so that its lines carry the request ID
// (and the trace IDs when tracing is on); the access log adds one line per
// request. Time and latency are dropped here only to make the output stable.
func ExampleFromContext() {
	logger := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == "latency" {
				return slog.Attr{}
			}
			return a
		},
	}))
	requestID, err := logging.NewRequestID()
	if err != nil {
		fmt.Println(err)
		return
	}
	accessLog, err := logging.NewAccessLog(logger)
	if err != nil {
		fmt.Println(err)
		return
	}
	r := gin.New()
	r.Use(logging.Recovery(logger), requestID.Middleware(), accessLog.Middleware())
	errcode.Handle(r)
	r.GET("/orders/:id", func(c *gin.Context) {
		logging.FromContext(c.Request.Context()).Info("loading order", "id", c.Param("id"))
		errcode.Write(c, errcode.NotFound)
	})

	req := httptest.NewRequest("GET", "/orders/7", nil)
	req.Header.Set("X-Request-ID", "req-42")
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	fmt.Println(w.Code, w.Body.String())
	// Output:
	// {"level":"INFO","msg":"loading order","request_id":"req-42","id":"7"}
	// {"level":"WARN","msg":"request","method":"GET","route":"/orders/:id","path":"/orders/7","status":404,"bytes":129,"client_ip":"192.0.2.1","user_agent":"","request_id":"req-42","code":404001,"reason":"NOT_FOUND"}
	// 404 {"code":404001,"reason":"NOT_FOUND","message":"the resource was not found","solution":"check the URL path","request_id":"req-42"}
}
