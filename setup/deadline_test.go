package setup_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/setup"
)

// The deadline section puts the deadline middleware on the chain: the
// default for every route, a route of its own, an exempt route, the 504
// envelope, the access log line and the metric.
func TestDeadlineSection(t *testing.T) {
	cfg := mustParse(t, `
service: {name: orders}
deadline: {default: 50ms, routes: {"GET /reports/:id": 10s}, exempt: ["GET /events"]}
`)
	r, ch, logs := use(t, cfg)
	remaining := func(c *gin.Context) {
		if dl, ok := c.Request.Context().Deadline(); ok {
			c.String(http.StatusOK, "%d", time.Until(dl)/time.Second)
			return
		}
		c.String(http.StatusOK, "none")
	}
	r.GET("/reports/:id", remaining)
	r.GET("/events", remaining)
	r.GET("/slow", func(c *gin.Context) { <-c.Request.Context().Done() })

	w := get(r, "/slow")
	if w.Code != http.StatusGatewayTimeout || reason(t, w) != "DEADLINE_EXCEEDED" {
		t.Fatalf("/slow: %d %s", w.Code, w.Body.String())
	}
	if !strings.Contains(logs.String(), `"reason":"DEADLINE_EXCEEDED"`) {
		t.Errorf("the access log does not show the 504:\n%s", logs.String())
	}
	if got := counterSum(t, ch, "gingov_deadline_exceeded_total"); got != 1 {
		t.Errorf("gingov_deadline_exceeded_total = %v, want 1", got)
	}
	if w := get(r, "/reports/7"); w.Body.String() != "9" {
		t.Errorf("/reports/7: %q seconds left, want 9 (of 10)", w.Body.String())
	}
	if w := get(r, "/events"); w.Body.String() != "none" {
		t.Errorf("/events: deadline %q, want none", w.Body.String())
	}
}

// counterSum sums the series of a counter family of the chain's registry.
func counterSum(t *testing.T, ch *setup.Chain, name string) float64 {
	t.Helper()
	mfs, err := ch.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// Without the section there is no deadline.
func TestNoDeadlineSection(t *testing.T) {
	r, _, _ := use(t, mustParse(t, "service: {name: orders}\n"))
	r.GET("/has", func(c *gin.Context) {
		_, ok := c.Request.Context().Deadline()
		c.String(http.StatusOK, "%v", ok)
	})
	if w := get(r, "/has"); w.Body.String() != "false" {
		t.Errorf("a deadline without the section: %q", w.Body.String())
	}
}

// invalidDeadlineDocs are deadline sections (after a service name) that
// Parse or Validate rejects, each with the start of the error; the schema
// test checks them too.
var invalidDeadlineDocs = map[string]string{
	`deadline: {default: -1s}`:                               `setup: deadline.default: -1s must be > 0`,
	`deadline: {routes: {"/x": 1s}}`:                         `setup: deadline.routes["/x"]: deadline: WithRoute: route "/x" must be`,
	`deadline: {routes: {"GET /x": 0s}}`:                     `setup: deadline.routes["GET /x"]: deadline: WithRoute: "GET /x": timeout 0s must be > 0`,
	`deadline: {exempt: ["GET /a", "events"]}`:               `setup: deadline.exempt[1]: deadline: WithExempt: route "events" must be`,
	`deadline: {routes: {"GET /x": 1s}, exempt: ["GET /x"]}`: `setup: deadline: deadline: WithExempt: route "GET /x" is configured twice`,
	`deadline: {default: 1s, route: {}}`:                     `setup: `, // unknown key
}

func TestDeadlineValidation(t *testing.T) {
	for doc, want := range invalidDeadlineDocs {
		cfg, err := setup.Parse([]byte("service: {name: orders}\n" + doc))
		if err == nil {
			err = cfg.Validate()
		}
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: error %v, want %q…", doc, err, want)
		}
	}
	cfg := mustParse(t, "service: {name: orders}\ndeadline: {default: 1s}\n")
	if err := setup.ApplyEnv(&cfg, []string{"GINGOV_DEADLINE_DEFAULT=2s", "GINGOV_DEADLINE_EXEMPT=GET /events,GET /ws"}); err != nil {
		t.Fatal(err)
	}
	if cfg.Deadline.Default != 2*time.Second || len(cfg.Deadline.Exempt) != 2 || cfg.Validate() != nil {
		t.Errorf("after the environment: %+v, %v", cfg.Deadline, cfg.Validate())
	}
	r := gin.New()
	bad := cfg
	bad.Deadline.Default = -time.Second
	if _, err := setup.Use(t.Context(), r, bad); err == nil {
		t.Error("Use accepted a negative deadline")
	}
}
