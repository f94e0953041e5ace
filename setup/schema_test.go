package setup_test

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/gingov/gingov/setup"
	"github.com/gingov/gingov/setup/internal/choices"
	"github.com/gingov/gingov/setup/internal/schema"
	"github.com/gingov/gingov/tracing"
)

const schemaFile = "gingov.schema.json"

// The committed schema is what the generator makes of the configuration
// types now: after a change to them, run make generate (or go generate in
// setup).
func TestSchemaIsCurrent(t *testing.T) {
	repoRoot(t) // elsewhere the build list may hold other versions of the types
	want, err := schema.Generate(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is stale: run make generate (or cd setup && go generate .)", schemaFile)
	}
}

// draft07Keywords are the keywords the schema may use: those draft-07
// validators know (editors validate as draft-07 does), and $defs, which
// they reach as a JSON pointer. A 2019+ keyword (dependentRequired,
// unevaluatedProperties, prefixItems...) would be ignored there.
var draft07Keywords = []string{"$schema", "$id", "$ref", "$defs", "$comment", "title", "description", "examples",
	"type", "enum", "const", "properties", "additionalProperties", "required", "propertyNames", "items",
	"minItems", "maxItems", "uniqueItems", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
	"minLength", "maxLength", "pattern", "allOf", "anyOf", "oneOf", "not", "if", "then", "else", "default"}

func TestSchemaKeywordsAreDraft07(t *testing.T) {
	data, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var walk func(v any, names bool)
	walk = func(v any, names bool) { // names: v maps names to schemas
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if !names && !slices.Contains(draft07Keywords, k) {
					t.Errorf("keyword %q is not draft-07's", k)
				}
				switch {
				case names:
					walk(x, false)
				case k == "properties" || k == "$defs":
					walk(x, true)
				case k == "enum" || k == "const" || k == "examples" || k == "required":
				default:
					walk(x, false)
				}
			}
		case []any:
			for _, x := range v {
				walk(x, false)
			}
		}
	}
	walk(doc, false)
}

// compiledSchema is setup/gingov.schema.json, compiled as draft 2020-12.
func compiledSchema(t testing.TB) *jsonschema.Schema { return compileAs(t, jsonschema.Draft2020) }

// compileAs compiles the schema under another draft: editors' YAML
// language server validates as draft-07 does (which ignores the siblings
// of a $ref and knows no 2019+ keyword), and the schema must mean the
// same there.
func compileAs(t testing.TB, draft *jsonschema.Draft) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	if draft == jsonschema.Draft7 {
		doc.(map[string]any)["$schema"] = "http://json-schema.org/draft-07/schema#"
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(draft)
	if err := c.AddResource(schema.ID, doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(schema.ID)
	if err != nil {
		t.Fatal(err)
	}
	return sch
}

// schemaErr validates a YAML document against the schema, as an editor
// does: the YAML's own values, mappings as JSON objects.
func schemaErr(sch *jsonschema.Schema, doc string) error {
	var v any
	if err := yaml.Unmarshal([]byte(doc), &v); err != nil {
		return err
	}
	return sch.Validate(jsonValue(v))
}

// jsonValue is a decoded YAML value as JSON has it: string keys, and no
// NaN or infinity (JSON has none; they become the strings YAML spells
// them with, which no number schema accepts, as no number field of setup
// accepts them).
func jsonValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			v[k] = jsonValue(x)
		}
		return v
	case map[any]any:
		m := make(map[string]any, len(v))
		for k, x := range v {
			m[fmt.Sprint(k)] = jsonValue(x)
		}
		return m
	case []any:
		for i, x := range v {
			v[i] = jsonValue(x)
		}
		return v
	case float64:
		switch {
		case math.IsNaN(v):
			return ".nan"
		case math.IsInf(v, 1):
			return ".inf"
		case math.IsInf(v, -1):
			return "-.inf"
		}
	}
	return v
}

func goErr(doc string) error {
	cfg, err := setup.Parse([]byte(doc))
	if err == nil {
		err = cfg.Validate()
	}
	return err
}

// validDocs are documents setup accepts, beyond the fuzz seeds and the
// example configurations: the forms each kind of field takes.
var validDocs = []string{
	"service: {name: a, version: null}\nlog: null\ntracing:\nmetrics: {}",
	"service: {name: a}\nlog: {level: DEBUG}",
	"service: {name: a}\ntracing: {propagators: [\" B3 \", TraceContext, b3multi, baggage], sample_ratio: 1, endpoint: \"[::1]:4317\"}",
	"service: {name: a}\ntracing: {sample_ratio: 0, exporter: \"\", skip_paths: null, propagators: null}",
	"service: {name: a}\nratelimit: {redis: {deadline: \"0\", db: 0, instances: 3, cluster: null}}",
	"service: {name: a}\nratelimit: {redis: {deadline: 1h2m3.5s}}",
	"service: {name: a}\nratelimit: {redis: {deadline: -0s}}",
	"service: {name: a}\nratelimit: {redis: {deadline: +1µs}}",
	"service: {name: a}\nratelimit: {redis: {deadline: .5s}}",
	"service: {name: a}\nratelimit: {rules: [{by: route, limit: 1, period: 0.5ms}, {name: x, by: ip, limit: 2, period: 1m, burst: 0}]}",
	"service: {name: a}\ncircuitbreaker: {policy: sre, k: 1, min_requests: 4294967295, window: 1m}",
	"service: {name: a}\ncircuitbreaker: {k: 0, failure_ratio: 1, open_timeout: 0s}",
	"service: {name: a}\nmetrics: {path: \"-\", namespace: _app1}",
	"service: {name: a}\ndeadline: {default: 0s, routes: {\"GET /a\": 1ms, \"POST /b/:id\": 1h}, exempt: [\"GET /events\"]}",
	"service: {name: a}\ndeadline: {routes: null, exempt: []}",
	"service: {name: a}\nsentinel: {enabled: true, rules: null, nacos: null}",
	"service: {name: a}\nsentinel: {enabled: false, rules: {flow: []}}",
	"service: {name: a}\nsentinel: {enabled: true, rules: {flow: [{resource: r, threshold: 1, behavior: WarmUp, warmUpPeriodSec: 1, warmUpColdFactor: 2}]}}",
	"service: {name: a}\nsentinel: {enabled: true, rules: {flow: [{resource: r, threshold: 0.5, behavior: throttle, maxQueueingTimeMs: 10, statIntervalMs: 500}]}}",
	"service: {name: a}\nsentinel: {enabled: true, rules: {hotspot: [{resource: r, param: 1, threshold: 1, specific: {\"1\": 5, vip: 100}, behavior: throttle, burst: -1}]}}",
	"service: {name: a}\nsentinel: {enabled: true, rules: {hotspot: [{resource: r, threshold: 2, durationSec: 0, maxQueueingTimeMs: -1}]}}",
	"service: {name: a}\nsentinel: {enabled: true, rules: {system: [{metric: load, threshold: 4, strategy: BBR}, {metric: inbound_qps, threshold: 1000, strategy: none}]}}",
	"service: {name: a}\nsentinel: {enabled: true, rules: {isolation: [{resource: r, maxConcurrency: 1}]}}",
	"service: {name: a}\nsentinel: {enabled: true, rules: {circuitBreaker: [{resource: r, strategy: error_count, threshold: 5}, {resource: s, strategy: slow_ratio, threshold: 1, maxAllowedRtMs: 100}]}}",
	"service: {name: a}\nreload: {file: true, nacos: {addr: \"127.0.0.1:8848\", data_id: d, group: g, namespace: n}}",
}

// moreInvalidDocs are documents setup rejects, beyond those of the other
// tests (invalidDocs, invalidDeadlineDocs, invalidPropagatorDocs): one for
// each constraint of the schema that those do not reach.
var moreInvalidDocs = []string{
	"",
	"null",
	"- a",
	"log: {level: info}",
	"service: null",
	"service: {name: \" \"}",
	"service: {name: a}\nlog: []",
	"service: {name: a}\ntracing: {disabled: \"true\"}",
	"service: {name: a}\ntracing: {endpoint: \"[::1]\"}",
	"service: {name: a}\ntracing: {sample_ratio: -0.1}",
	"service: {name: a}\ntracing: {propagators: [\"b3 x\"]}",
	"service: {name: a}\ntracing: {skip_paths: /a}",
	"service: {name: a}\nratelimit: {redis: {deadline: 5}}",
	"service: {name: a}\nratelimit: {redis: {deadline: \"\"}}",
	"service: {name: a}\nratelimit: {redis: {deadline: -1ms}}",
	"service: {name: a}\nratelimit: {redis: {deadline: 1d}}",
	"service: {name: a}\nratelimit: {redis: {db: -1}}",
	"service: {name: a}\nratelimit: {redis: {instances: -1}}",
	"service: {name: a}\nratelimit: {rules: [null]}",
	"service: {name: a}\nratelimit: {rules: [{by: ip, limit: 1, period: 0s}]}",
	"service: {name: a}\nratelimit: {rules: [{by: ip, limit: 1, period: -1s}]}",
	"service: {name: a}\nratelimit: {rules: [{by: ip, limit: 1, period: 1s, burst: -1}]}",
	"service: {name: a}\nratelimit: {rules: [{by: ipx, limit: 1, period: 1s}]}",
	"service: {name: a}\nratelimit: {rules: [{by: \"header:X Y\", limit: 1, period: 1s}]}",
	"service: {name: a}\ncircuitbreaker: {window: -1s}",
	"service: {name: a}\ncircuitbreaker: {open_timeout: -1s}",
	"service: {name: a}\ncircuitbreaker: {min_requests: -1}",
	"service: {name: a}\ncircuitbreaker: {failure_ratio: -0.5}",
	"service: {name: a}\ncircuitbreaker: {k: -.inf}",
	"service: {name: a}\ncircuitbreaker: {enabled: true, extra: 1}",
	"service: {name: a}\nmetrics: {path: \"--\"}",
	"service: {name: a}\nmetrics: {namespace: 1app}",
	"service: {name: a}\nreload: {nacos: {data_id: d}}",
	"service: {name: a}\nreload: {nacos: {addr: \"127.0.0.1:8848\", data_id: \"\"}}",
	"service: {name: a}\nsentinel: {rules_file: x.yaml}",
	"service: {name: a}\nsentinel: {nacos: {addr: \"127.0.0.1:8848\", data_id: d}}",
	"service: {name: a}\nsentinel: {enabled: true, rules_file: x.yaml, rules: {isolation: [{resource: r, maxConcurrency: 1}]}}",
	"service: {name: a}\nsentinel: {enabled: true, nacos: {addr: \"127.0.0.1:8848\", data_id: d}, rules: {system: [{metric: load, threshold: 1}]}}",
	"service: {name: a}\nsentinel: {enabled: true, params: [ipx]}",
	"service: {name: a}\nsentinel: {enabled: true, params: [\"query:\"]}",
	"service: {name: a}\nsentinel: {enabled: true, rules: {flow: [{threshold: 1}]}}",
	"service: {name: a}\nsentinel: {enabled: true, rules: {flow: [{resource: r}]}}",
	"service: {name: a}\nsentinel: {enabled: true, rules: {flow: [{resource: r, threshold: .inf}]}}",
	"service: {name: a}\nsentinel: {enabled: true, rules: {flow: [{resource: r, threshold: 1, warmUpPeriodSec: -1}]}}",
	"service: {name: a}\nsentinel: {enabled: true, rules: {flow: [{resource: r, threshold: 1, behavior: warmup}]}}",
	"service: {name: a}\nsentinel: {enabled: true, rules: {flow: [{resource: r, threshold: 1, behavior: warmup, warmUpPeriodSec: null}]}}",
	"service: {name: a}\nsentinel: {enabled: true, rules: {flow: [{resource: r, threshold: 1, behavior: warmup, warmUpPeriodSec: 1, warmUpColdFactor: 1}]}}",
	"service: {name: a}\nsentinel: {enabled: true, rules: {flow: [{resource: r, threshold: 1, maxQueueingTimeMs: 4294967296}]}}",
	"service: {name: a}\nsentinel: {enabled: true, rules: {flow: [{resource: r, threshold: 1, rate: 2}]}}",
	"service: {name: a}\nsentinel: {enabled: true, rules: {hotspot: [{resource: r, threshold: 0}]}}",
	"service: {name: a}\nsentinel: {enabled: true, rules: {hotspot: [{resource: r, threshold: 1, param: -1}]}}",
	"service: {name: a}\nsentinel: {enabled: true, rules: {hotspot: [{resource: r, threshold: 1, durationSec: -1}]}}",
	"service: {name: a}\nsentinel: {enabled: true, rules: {hotspot: [{resource: r, threshold: 1, burst: -1}]}}",
	"service: {name: a}\nsentinel: {enabled: true, rules: {hotspot: [{resource: r, threshold: 1, behavior: Throttle, maxQueueingTimeMs: -1}]}}",
	"service: {name: a}\nsentinel: {enabled: true, rules: {system: [{threshold: 1}]}}",
	"service: {name: a}\nsentinel: {enabled: true, rules: {system: [{metric: load}]}}",
	"service: {name: a}\nsentinel: {enabled: true, rules: {system: [{metric: cpu, threshold: 1.5}]}}",
	"service: {name: a}\nsentinel: {enabled: true, rules: {system: [{metric: avg_rt, threshold: 10, strategy: bbr}]}}",
	"service: {name: a}\nsentinel: {enabled: true, rules: {isolation: [{resource: r}]}}",
	"service: {name: a}\nsentinel: {enabled: true, rules: {isolation: [{resource: \"\", maxConcurrency: 1}]}}",
	"service: {name: a}\nsentinel: {enabled: true, rules: {circuitBreaker: [{resource: r, threshold: 0.5}]}}",
	"service: {name: a}\nsentinel: {enabled: true, rules: {circuitBreaker: [{resource: r, strategy: error_ratio, threshold: 1.5}]}}",
	"service: {name: a}\nsentinel: {enabled: true, rules: {circuitBreaker: [{resource: r, strategy: error_count, threshold: -1}]}}",
	"service: {name: a}\nsentinel: {enabled: true, rules: {circuitBreaker: [{resource: r, strategy: slow_ratio, threshold: 0.5}]}}",
	"service: {name: a}\nsentinel: {enabled: true, rules: {circuitBreaker: [{resource: r, strategy: slow_ratio, threshold: 0.5, maxAllowedRtMs: null}]}}",
	"service: {name: a}\ndeadline: {routes: {\"GET /a\": 5}}",
	"service: {name: a}\ndeadline: {routes: {\"GET /a\": null}}",
	"service: {name: a}\ndeadline: {routes: {\"GET a\": 1s}}",
	"service: {name: a}\ndeadline: {exempt: [\"GET /a\", \"GET /a\"]}",
	"service: {name: a}\ndeadline: {exempt: [\"GET /a b\"]}",
	"service: {name: a}\nexempt: {paths: [\"\"]}",
}

// schemaCannot are documents that setup rejects and the schema accepts:
// rules JSON Schema cannot state, with the reason.
var schemaCannot = map[string]string{
	// names of rate-limit rules: uniqueItems compares whole items, and
	// the name defaults to the by key of the same item.
	"service: {name: a}\nratelimit: {rules: [{by: ip, limit: 1, period: 1s}, {by: ip, limit: 2, period: 1s}]}": "rate-limit rule names (name, else by) must be unique",
	// a route both given a deadline and exempt: a key of one object
	// against the items of another array.
	"service: {name: orders}\n" + `deadline: {routes: {"GET /x": 1s}, exempt: ["GET /x"]}`: "a route is either timed (deadline.routes) or exempt (deadline.exempt)",
	// durations as numbers: a pattern sees text, not the value.
	"service: {name: a}\nratelimit: {rules: [{by: ip, limit: 1, period: 0.1ns}]}":         "a positive duration below 1ns rounds to 0",
	"service: {name: a}\nratelimit: {redis: {deadline: 9999999999h}}":                     "a duration beyond 2562047h overflows",
	"service: {name: a}\ncircuitbreaker: {window: 5ns}":                                   "a breaker window shorter than its bucket count in nanoseconds",
	"service: {name: a}\ndeadline: {routes: {\"GET /a\": 0.1ns}}":                         "a positive duration below 1ns rounds to 0",
	"service: {name: a}\nreload: {consul: {addr: \"127.0.0.1:8500\", key: k, wait: 11m}}": "a duration's upper bound (reload.consul.wait ≤ 10m): a pattern sees text, not the value",
}

// schemaStricter are documents that setup accepts and the schema rejects,
// by design: the YAML decoder turns a scalar of the wrong type into the
// field's type (a number into a string, a quoted number or a fraction
// into an integer, null into a list item or a map value), which an editor
// should flag: version: 1.10 is the string "1.1". One more is the test's
// doing: the decoder reads 1e3 as a string (YAML 1.1), editors as the
// number (YAML 1.2), which the schema accepts.
var schemaStricter = []string{
	"service: {name: 123}",
	"service: {name: a, version: 1.10}",
	"service: {name: a}\ntracing: {sample_ratio: \"0.5\"}",
	"service: {name: a}\nratelimit: {redis: {db: \"1\"}}",
	"service: {name: a}\nratelimit: {redis: {db: 1.5}}",
	"service: {name: a}\ntracing: {skip_paths: [1]}",
	"service: {name: a}\nsentinel: {enabled: true, rules: {hotspot: [{resource: r, threshold: 1.5}]}}",
	"service: {name: a}\nsentinel: {enabled: true, rules: {hotspot: [{resource: r, threshold: 1, specific: {a: null}}]}}",
	"service: {name: a}\nsentinel: {enabled: true, rules: {flow: [{resource: r, threshold: 1e3}]}}",
}

// documents is every document of setup's tests and examples, each with
// what setup says of it.
func documents(t *testing.T) map[string]error {
	t.Helper()
	docs := map[string]error{}
	add := func(doc string) { docs[doc] = goErr(doc) }
	for _, d := range seedDocs {
		add(d)
	}
	for _, d := range validDocs {
		add(d)
	}
	for _, d := range moreInvalidDocs {
		add(d)
	}
	for _, d := range reloadDocs {
		add(d)
	}
	for _, d := range invalidReloadDocs {
		add(d)
	}
	for _, tc := range invalidDocs {
		add(tc.doc)
	}
	for d := range invalidDeadlineDocs {
		add("service: {name: orders}\n" + d)
	}
	for _, tc := range invalidPropagatorDocs {
		add("service: {name: a}\n" + tc.doc)
	}
	for d := range schemaCannot {
		add(d)
	}
	for _, d := range schemaStricter {
		add(d)
	}
	return docs
}

// Every configuration of the repository names the schema, setup accepts it
// and so does the schema.
func TestExampleConfigsValidate(t *testing.T) {
	sch := compiledSchema(t)
	for name, doc := range exampleConfigs(t) {
		if err := goErr(doc); err != nil {
			t.Errorf("%s: setup rejects it: %v", name, err)
		}
		if err := schemaErr(sch, doc); err != nil {
			t.Errorf("%s: the schema rejects it: %v", name, err)
		}
	}
}

// The schema accepts the documents setup accepts and rejects those it
// rejects, but for the listed exceptions.
func TestSchemaAgreesWithValidation(t *testing.T) {
	for name, draft := range map[string]*jsonschema.Draft{"2020-12": jsonschema.Draft2020, "draft-07": jsonschema.Draft7} {
		t.Run(name, func(t *testing.T) { agreesWithValidation(t, compileAs(t, draft)) })
	}
}

func agreesWithValidation(t *testing.T, sch *jsonschema.Schema) {
	for _, d := range validDocs {
		if err := goErr(d); err != nil {
			t.Errorf("validDocs %q: setup rejects it: %v", d, err)
		}
	}
	for _, d := range append(slices.Clone(moreInvalidDocs), invalidReloadDocs...) {
		if goErr(d) == nil {
			t.Errorf("%q: setup accepts it", d)
		}
	}
	for doc, goerr := range documents(t) {
		serr := schemaErr(sch, doc)
		_, cannot := schemaCannot[doc]
		stricter := slices.Contains(schemaStricter, doc)
		switch {
		case cannot:
			if goerr == nil || serr != nil {
				t.Errorf("%q is listed as beyond the schema (%s): setup: %v; schema: %v", doc, schemaCannot[doc], goerr, serr)
			}
		case stricter:
			if goerr != nil || serr == nil {
				t.Errorf("%q is listed as stricter in the schema: setup: %v; schema: %v", doc, goerr, serr)
			}
		case goerr == nil && serr != nil:
			t.Errorf("%q: setup accepts it, the schema rejects it: %v", doc, serr)
		case goerr != nil && serr == nil:
			t.Errorf("%q: setup rejects it (%v), the schema accepts it", doc, goerr)
		}
	}
}

// setDocs place a value of each choices set in a document.
var setDocs = map[string]string{
	"setup.Log.Level":               "log: {level: %q}",
	"setup.Tracing.Exporter":        "tracing: {exporter: %q}",
	"setup.Tracing.Propagators":     "tracing: {propagators: [%q]}",
	"setup.Redis.FailurePolicy":     "ratelimit: {redis: {failure_policy: %q}}",
	"setup.Breaker.Policy":          "circuitbreaker: {policy: %q}",
	"setup.Config.Mesh":             "mesh: %q",
	"setup.LimitRule.Enforce":       "ratelimit: {rules: [{by: ip, limit: 1, period: 1s, enforce: %q}]}",
	"sentinel.FlowRule.Behavior":    "sentinel: {enabled: true, rules: {flow: [{resource: r, threshold: 1, warmUpPeriodSec: 1, behavior: %q}]}}",
	"sentinel.HotspotRule.Behavior": "sentinel: {enabled: true, rules: {hotspot: [{resource: r, threshold: 1, behavior: %q}]}}",
	"sentinel.SystemRule.Metric":    "sentinel: {enabled: true, rules: {system: [{metric: %q, threshold: 0.5}]}}",
	"sentinel.SystemRule.Strategy":  "sentinel: {enabled: true, rules: {system: [{metric: cpu, threshold: 0.5, strategy: %q}]}}",
	"sentinel.BreakerRule.Strategy": "sentinel: {enabled: true, rules: {circuitBreaker: [{resource: r, threshold: 0.5, maxAllowedRtMs: 10, strategy: %q}]}}",
}

// The enums of the schema are the sets setup checks (package choices);
// the sets of fields validated elsewhere (tracing, sentinel) are those
// that code accepts: each value passes, in any case where the set says
// so, and a wrong value's error lists exactly the set.
func TestSchemaEnumsAreTheValidatedSets(t *testing.T) {
	sch := compiledSchema(t)
	for field, set := range choices.ByField {
		tmpl, ok := setDocs[field]
		if !ok {
			t.Errorf("%s: no document in setDocs", field)
			continue
		}
		doc := func(v string) string { return "service: {name: a}\n" + fmt.Sprintf(tmpl, v) }
		values := slices.Clone(set.Values)
		if set.Empty {
			values = append(values, "")
		}
		if set.Fold {
			for _, v := range set.Values {
				values = append(values, strings.ToUpper(v))
			}
		}
		if set.Trim {
			values = append(values, " "+set.Values[0]+"\t")
		}
		for _, v := range values {
			if err := goErr(doc(v)); err != nil {
				t.Errorf("%s %q: setup rejects it: %v", field, v, err)
			}
			if err := schemaErr(sch, doc(v)); err != nil {
				t.Errorf("%s %q: the schema rejects it: %v", field, v, err)
			}
		}
		var wrong []string
		if !set.Empty {
			wrong = append(wrong, "")
		}
		if !set.Fold {
			wrong = append(wrong, strings.ToUpper(set.Values[0]))
		}
		wrong = append(wrong, "bogus", set.Values[0]+"x")
		for _, v := range wrong {
			err := goErr(doc(v))
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q is not %s", v, set)) {
				t.Errorf("%s %q: setup says %v, want \"is not %s\"", field, v, err, set)
			}
			if schemaErr(sch, doc(v)) == nil {
				t.Errorf("%s %q: the schema accepts it", field, v)
			}
		}
	}
	// The propagator names are tracing's.
	for _, v := range choices.Propagator.Values {
		if _, err := tracing.NewPropagator(v); err != nil {
			t.Errorf("propagator %q: %v", v, err)
		}
	}
}

// repoRoot is the root of the gingov repository that holds this module;
// the test skips when setup is built from elsewhere (a module cache).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if mod, err := os.ReadFile(filepath.Join(root, "go.mod")); err != nil || !bytes.HasPrefix(mod, []byte("module github.com/gingov/gingov\n")) {
		t.Skipf("setup is not in the gingov repository (%s)", root)
	}
	return root
}

var modeline = regexp.MustCompile(`^# yaml-language-server: \$schema=(\S+)\n`)

// exampleConfigs are the gingov configurations of the repository: its
// gingov*.yaml files and the YAML blocks of its Markdown documents that
// configure a service. Each names the schema on its first line, for
// editors; a file by its relative path, a document by the schema's URL.
func exampleConfigs(t *testing.T) map[string]string {
	t.Helper()
	root := repoRoot(t)
	out := map[string]string{}
	block := regexp.MustCompile("(?s)```yaml\n(.*?)```")
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		name := d.Name()
		isConfig := strings.HasPrefix(name, "gingov") && (strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml"))
		if !isConfig && !strings.HasSuffix(name, ".md") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if isConfig {
			m := modeline.FindSubmatch(data)
			switch {
			case m == nil:
				t.Errorf("%s: first line is not # yaml-language-server: $schema=<path>", rel)
			case filepath.Clean(filepath.Join(filepath.Dir(path), string(m[1]))) != filepath.Join(root, "setup", schemaFile):
				t.Errorf("%s: $schema=%s is not the path of setup/%s", rel, m[1], schemaFile)
			}
			out[rel] = string(data)
			return nil
		}
		for i, b := range block.FindAllSubmatch(data, -1) {
			doc := string(b[1])
			if !regexp.MustCompile(`(?m)^service:`).MatchString(doc) {
				continue // not a gingov.yaml (a Sentinel rule document, ...)
			}
			if m := modeline.FindStringSubmatch(doc); m == nil || m[1] != schema.ID {
				t.Errorf("%s: YAML block %d: first line is not # yaml-language-server: $schema=%s", rel, i, schema.ID)
			}
			out[fmt.Sprintf("%s block %d", rel, i)] = doc
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 2 {
		t.Fatalf("found %d example configurations, want the distributed example's and the README's", len(out))
	}
	return out
}

// beyondSchema matches setup's errors for the rules listed in
// schemaCannot, which the schema lets through.
var beyondSchema = regexp.MustCompile(`is used by another rule|is configured twice|0s must be > 0|timeout 0s must be > 0|buckets must be between|invalid duration|overflow|reload.consul.wait: .* is not in \[0, |but no profile is set`)

// What the schema accepts, setup accepts, but for the rules beyond JSON
// Schema: an editor never passes a document the service then refuses.
func FuzzSchemaAcceptsOnlyValid(f *testing.F) {
	for _, d := range seedDocs {
		f.Add(d)
	}
	for _, d := range validDocs {
		f.Add(d)
	}
	for _, d := range moreInvalidDocs {
		f.Add(d)
	}
	for _, tc := range invalidDocs {
		f.Add(tc.doc)
	}
	sch := compiledSchema(f)
	f.Fuzz(func(t *testing.T, doc string) {
		if schemaErr(sch, doc) != nil {
			return
		}
		if err := goErr(doc); err != nil && !beyondSchema.MatchString(err.Error()) {
			t.Fatalf("the schema accepts %q, setup rejects it: %v", doc, err)
		}
	})
}
