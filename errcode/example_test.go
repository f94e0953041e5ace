package errcode_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/errcode"
)

// Codes are declared once, as package variables: a duplicate code or reason
// panics at program start.
var ErrOrderNotFound = errcode.MustNew(5001003, http.StatusNotFound,
	"ORDER_NOT_FOUND", "order not found", errcode.WithSolution("check the order id"))

func ExampleMustNew() {
	fmt.Println(ErrOrderNotFound.Code(), ErrOrderNotFound.Status(), ErrOrderNotFound.Reason())
	service, module, errNum := errcode.Split(ErrOrderNotFound.Code())
	fmt.Println(service, module, errNum)
	// Output:
	// 5001003 404 ORDER_NOT_FOUND
	// 5 1 3
}

func ExampleHandle() {
	gin.SetMode(gin.TestMode)
	r := gin.New()
	errcode.Handle(r) // before the routes
	r.GET("/orders/:id", errcode.Handler(func(c *gin.Context) error {
		return ErrOrderNotFound.WithMetadata("id", c.Param("id"))
	}))

	for _, target := range []string{"/nope", "/orders/7"} {
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
		fmt.Println(rec.Code, rec.Header().Get("Content-Type"))
		fmt.Println(rec.Body.String())
	}
	// Output:
	// 404 application/json; charset=utf-8
	// {"code":404001,"reason":"NOT_FOUND","message":"the resource was not found","solution":"check the URL path","request_id":""}
	// 404 application/json; charset=utf-8
	// {"code":5001003,"reason":"ORDER_NOT_FOUND","message":"order not found","solution":"check the order id","request_id":"","metadata":{"id":"7"}}
}

func ExampleFrom() {
	ctx, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	<-ctx.Done()

	e := errcode.From(fmt.Errorf("query orders: %w", ctx.Err()))
	fmt.Println(e.Code().Status(), e.Code().Reason(), e.Message())
	// Output:
	// 504 TIMEOUT the request timed out
}
