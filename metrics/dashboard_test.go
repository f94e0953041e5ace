package metrics_test

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

type dashboard struct {
	Title      string `json:"title"`
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []dashPanel `json:"panels"`
}

type dashPanel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos *struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []dashPanel `json:"panels"` // collapsed rows
}

// selector finds metric names in PromQL: a name before a label matcher or
// a range, and any name of the kit's families wherever it appears.
var (
	selector = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{\[]`)
	kitName  = regexp.MustCompile(`\b((?:http_server|gingov)_[a-zA-Z0-9_:]*)`)
)

// TestDashboard checks dashboards/gingov.json: a Grafana dashboard whose
// panels all query Prometheus through the ${datasource} variable, and
// whose PromQL names only series the kit registers — and every family the
// kit registers is on some panel.
func TestDashboard(t *testing.T) {
	raw, err := os.ReadFile("../dashboards/gingov.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if d.Title == "" || d.UID == "" || len(d.Panels) == 0 {
		t.Fatalf("not a dashboard: title %q uid %q, %d panels", d.Title, d.UID, len(d.Panels))
	}
	var hasDatasource bool
	for _, v := range d.Templating.List {
		if v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus" {
			hasDatasource = true
		}
	}
	if !hasDatasource {
		t.Fatal("no ${datasource} variable of type datasource (prometheus)")
	}

	known := map[string]string{} // series name -> family
	for _, mf := range gatherAll(t) {
		known[mf.GetName()] = mf.GetName()
		if mf.GetType() == dto.MetricType_HISTOGRAM {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				known[mf.GetName()+s] = mf.GetName()
			}
		}
	}
	if len(known) < 20 {
		t.Fatalf("only %d series names gathered", len(known))
	}
	unused := map[string]bool{}
	for _, fam := range known {
		unused[fam] = true
	}

	ids := map[int]bool{}
	var panels []dashPanel
	for _, p := range d.Panels {
		panels = append(panels, p)
		panels = append(panels, p.Panels...)
	}
	queries := 0
	for _, p := range panels {
		if ids[p.ID] || p.ID == 0 {
			t.Errorf("panel %q: id %d missing or repeated", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: bad gridPos %+v", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" || p.Datasource.Type != "prometheus" {
			t.Errorf("panel %q: datasource %+v, want prometheus ${datasource}", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no targets", p.Title)
		}
		for _, tg := range p.Targets {
			queries++
			if tg.RefID == "" || strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q: target without refId or expr", p.Title)
				continue
			}
			if !strings.Contains(tg.Expr, `job=~"$job"`) {
				t.Errorf("panel %q: %s ignores the $job variable", p.Title, tg.Expr)
			}
			names := map[string]bool{}
			for _, m := range selector.FindAllStringSubmatch(tg.Expr, -1) {
				names[m[1]] = true
			}
			for _, m := range kitName.FindAllStringSubmatch(tg.Expr, -1) {
				names[m[1]] = true
			}
			for _, fn := range []string{"rate", "increase", "irate", "by", "without"} { // a function or clause before [ or {
				delete(names, fn)
			}
			if len(names) == 0 {
				t.Errorf("panel %q: no metric in %s", p.Title, tg.Expr)
			}
			for n := range names {
				fam, ok := known[n]
				if !ok {
					t.Errorf("panel %q: %s is not a series the kit registers", p.Title, n)
					continue
				}
				delete(unused, fam)
			}
		}
	}
	if len(unused) > 0 {
		var names []string
		for n := range unused {
			names = append(names, n)
		}
		slices.Sort(names)
		t.Errorf("no panel shows %v", names)
	}
	t.Logf("%d panels, %d queries, %d series names checked", len(panels), queries, len(known))
}

func gatherAll(t *testing.T) []*dto.MetricFamily {
	t.Helper()
	mfs, err := populated(t).Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}
