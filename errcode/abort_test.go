package errcode_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/errcode"
)

// overHTTP serves one request through a real server, so that headers sent
// before the body are what the client really gets.
func overHTTP(t *testing.T, r http.Handler, method, target, body string) (*http.Response, string) {
	t.Helper()
	srv := httptest.NewServer(r)
	defer srv.Close()
	req, err := http.NewRequest(method, srv.URL+target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func wantEnvelope(t *testing.T, resp *http.Response, body string, code *errcode.Code) {
	t.Helper()
	if resp.StatusCode != code.Status() || resp.Header.Get("Content-Type") != errcode.ContentType {
		t.Fatalf("got %d %q %q; want %d envelope", resp.StatusCode, resp.Header.Get("Content-Type"), body, code.Status())
	}
	if env := decodeEnvelope(t, []byte(body)); env.Code != code.Code() {
		t.Fatalf("code %d, want %d", env.Code, code.Code())
	}
}

// gin's c.BindJSON aborts with 400 and flushes the header itself; the
// envelope must still be the answer.
func TestMiddlewareGinBindJSON(t *testing.T) {
	r := newEngine()
	r.POST("/orders", func(c *gin.Context) {
		var req struct {
			Name string `json:"name" binding:"required"`
		}
		if err := c.BindJSON(&req); err != nil {
			return
		}
		c.String(201, req.Name)
	})
	resp, body := overHTTP(t, r, "POST", "/orders", `{}`)
	wantEnvelope(t, resp, body, errcode.BadRequest)
	if strings.Contains(body, "required") {
		t.Fatalf("validation internals leaked: %s", body)
	}
	resp, body = overHTTP(t, r, "POST", "/orders", `{"name":"x"}`)
	if resp.StatusCode != 201 || body != "x" {
		t.Fatalf("valid body: %d %q", resp.StatusCode, body)
	}
}

func TestMiddlewareAbortWithError(t *testing.T) {
	r := newEngine()
	r.GET("/code", func(c *gin.Context) { _ = c.AbortWithError(404, errcode.NotFound) })
	r.GET("/plain409", func(c *gin.Context) { _ = c.AbortWithError(409, errors.New("duplicate key orders_pkey")) })
	r.GET("/plain418", func(c *gin.Context) { _ = c.AbortWithError(418, errors.New("teapot internals")) })
	r.GET("/plain500", func(c *gin.Context) { _ = c.AbortWithError(500, errors.New("db down")) })

	resp, body := overHTTP(t, r, "GET", "/code", "")
	wantEnvelope(t, resp, body, errcode.NotFound)
	resp, body = overHTTP(t, r, "GET", "/plain409", "")
	wantEnvelope(t, resp, body, errcode.Conflict)
	resp, body = overHTTP(t, r, "GET", "/plain418", "")
	wantEnvelope(t, resp, body, errcode.BadRequest)
	resp, body = overHTTP(t, r, "GET", "/plain500", "")
	wantEnvelope(t, resp, body, errcode.Internal)
	for _, leak := range []string{"orders_pkey", "teapot", "db down"} {
		if strings.Contains(body, leak) {
			t.Fatalf("leaked %q", leak)
		}
	}
}

// Without an error, a status the handler flushed early is still sent as it was.
func TestMiddlewareKeepsPlainAbortStatus(t *testing.T) {
	r := newEngine()
	r.GET("/401", func(c *gin.Context) { c.AbortWithStatus(401) })
	r.GET("/early", func(c *gin.Context) {
		c.Status(202)
		c.Writer.WriteHeaderNow()
	})
	r.GET("/stream", func(c *gin.Context) {
		c.Status(200)
		_, _ = c.Writer.WriteString("part1")
		c.Writer.Flush()
		_ = c.Error(errors.New("late failure"))
	})
	for target, want := range map[string]int{"/401": 401, "/early": 202} {
		resp, body := overHTTP(t, r, "GET", target, "")
		if resp.StatusCode != want || body != "" {
			t.Errorf("%s: %d %q, want %d and no body", target, resp.StatusCode, body, want)
		}
	}
	resp, body := overHTTP(t, r, "GET", "/stream", "")
	if resp.StatusCode != 200 || body != "part1" {
		t.Errorf("an error after the body must not add a second one: %d %q", resp.StatusCode, body)
	}
}

func TestZeroValuesAreInternal(t *testing.T) {
	for _, err := range []error{&errcode.Error{}, &errcode.Code{}, (*errcode.Code)(nil), (*errcode.Error)(nil)} {
		if e := errcode.From(err); e.Code() != errcode.Internal {
			t.Errorf("From(%#v) = %v, want Internal", err, e.Code())
		}
	}
	r := newEngine()
	r.GET("/zero", func(c *gin.Context) { errcode.Write(c, &errcode.Code{}) })
	r.GET("/zeroerr", func(c *gin.Context) { errcode.Write(c, &errcode.Error{}) })
	for _, target := range []string{"/zero", "/zeroerr"} {
		checkEnvelope(t, serve(r, "GET", target, nil), errcode.Internal)
	}
	var typedNil *errcode.Error
	if errors.Is(errcode.NotFound.Wrap(nil), typedNil) {
		t.Fatal("Is matched a typed nil")
	}
}

func TestErrorTextKeepsCode(t *testing.T) {
	got := errcode.NotFound.WithMessage("order 7 missing").Wrap(errors.New("sql: no rows")).Error()
	if got != "errcode 404001 NOT_FOUND: order 7 missing: sql: no rows" {
		t.Fatalf("Error() = %q", got)
	}
}
