package schema

import (
	"encoding/json"
	"strconv"
	"strings"
	"unicode"

	"github.com/gingov/gingov/logging"

	"github.com/gingov/gingov/setup/internal/choices"
)

// The constraints of setup's validation (config.go, deadline.go, exempt.go)
// and of sentinel.Rules.Validate, as JSON Schema. The schema test checks
// them against the validation with every document of setup's tests: a
// document the validation rejects must fail the schema, one it accepts
// must pass.
//
// Every pattern is read alike by Go's regexp (RE2: the test's validator)
// and by ECMA-262 with the u flag (editors): no look-around, no
// back-references, escapes only of syntax characters.

// rule is what the table says of one field.
type rule struct {
	required bool     // present and not null (the zero value is invalid)
	duration duration // for a time.Duration field, or its items or map values
	keywords *obj     // merged into the field's schema
	items    *obj     // merged into the schema of its items, or map values
	schema   *obj     // the whole schema, for a type that decodes itself
}

type duration int

const (
	anyDuration duration = iota
	nonNegative
	positive
)

// Go duration strings, as time.ParseDuration reads them: "1s", "1h2m3.5s",
// "250ms", "-1.5h", "0" (a bare number is not a duration).
const (
	unit    = `(?:ns|us|µs|μs|ms|s|m|h)`
	number  = `(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)`
	zero    = `(?:0+(?:\.0*)?|\.0+)`
	nonZero = `(?:[0-9]*[1-9][0-9]*(?:\.[0-9]*)?|[0-9]*\.[0-9]*[1-9][0-9]*)`
)

func (d duration) pattern() string {
	switch d {
	case nonNegative: // "-0s" is zero, not negative
		return `^(?:\+?(?:0|(?:` + number + unit + `)+)|-(?:0|(?:` + zero + unit + `)+))$`
	case positive:
		return `^\+?(?:` + number + unit + `)*` + nonZero + unit + `(?:` + number + unit + `)*$`
	}
	return `^[-+]?(?:0|(?:` + number + unit + `)+)$`
}

const (
	// tokenRE is an HTTP header name (reqinfo.ValidHeaderName), or a method.
	tokenRE = "[!#$%&'*+.^_`|~0-9A-Za-z-]+"
	// hostPort is what net.SplitHostPort accepts: "host:port", "[::1]:port".
	hostPort = `^(?:\[[^\[\]]*\]:[^\[\]:]*|[^\[\]:]*:[^\[\]:]*)$`
	// route is deadline's "METHOD /route/:template".
	route = `^` + tokenRE + ` /[^ \t]*$`
)

// space is a class of the characters strings.TrimSpace removes
// (unicode.IsSpace), written as the characters themselves.
var space = func() string {
	var b strings.Builder
	b.WriteString("[")
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if !unicode.IsSpace(r) {
			continue
		}
		switch r {
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\v':
			b.WriteString(`\v`)
		case '\f':
			b.WriteString(`\f`)
		case '\r':
			b.WriteString(`\r`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteString("]")
	return b.String()
}()

func kw(pairs ...any) *obj {
	o := &obj{}
	for i := 0; i < len(pairs); i += 2 {
		o.set(pairs[i].(string), pairs[i+1])
	}
	return o
}

func n(s string) json.Number { return json.Number(s) }

// fieldRules are the constraints of single fields, by Go field.
var fieldRules = map[string]rule{
	"setup.Config.Service":      {required: true},
	"setup.Service.Name":        {required: true, keywords: kw("pattern", "[^"+strings.TrimPrefix(space, "["))}, // not blank
	"setup.Log.RequestIDHeader": {keywords: kw("pattern", "^(?:"+tokenRE+")?$")},
	"setup.Log.MaxFieldBytes":   {keywords: kw("anyOf", []any{kw("const", 0), kw("minimum", n(strconv.Itoa(logging.MinFieldBytes)))})},
	"setup.Log.MaxLineBytes":    {keywords: kw("anyOf", []any{kw("const", 0), kw("minimum", n(strconv.Itoa(logging.MinLineBytes)))})},

	"setup.Tracing.Endpoint":       {keywords: kw("pattern", "^$|"+hostPort)},
	"setup.Tracing.SampleRatio":    {keywords: kw("minimum", n("0"), "maximum", n("1"))},
	"setup.Tracing.ResponseHeader": {keywords: kw("pattern", "^(?:"+tokenRE+")?$")},
	"setup.Tracing.Propagators":    {keywords: kw("minItems", 1)},

	"setup.Metrics.Path":      {keywords: kw("pattern", "^(?:$|-$|/)")},
	"setup.Metrics.Namespace": {keywords: kw("pattern", "^(?:[_a-zA-Z][_a-zA-Z0-9]*)?$")},

	"setup.Redis.Addrs":     {items: kw("pattern", hostPort)},
	"setup.Redis.DB":        {keywords: kw("minimum", n("0"))},
	"setup.Redis.Instances": {keywords: kw("minimum", n("0"))},
	"setup.Redis.Deadline":  {duration: nonNegative},

	"setup.LimitRule.By":     {required: true, keywords: kw("pattern", "^(?:ip|route|global|header:"+tokenRE+")$")},
	"setup.LimitRule.Limit":  {required: true, keywords: kw("exclusiveMinimum", n("0"))},
	"setup.LimitRule.Period": {required: true, duration: positive},
	"setup.LimitRule.Burst":  {keywords: kw("minimum", n("0"))},
	"setup.LimitRule.Routes": {items: kw("pattern", "^/")},

	"setup.Breaker.Window":       {duration: nonNegative},
	"setup.Breaker.MinRequests":  {keywords: kw("minimum", n("0"), "maximum", n("4294967295"))},
	"setup.Breaker.FailureRatio": {keywords: kw("minimum", n("0"), "maximum", n("1"))},
	"setup.Breaker.OpenTimeout":  {duration: nonNegative},
	"setup.Breaker.K":            {keywords: kw("anyOf", []any{kw("const", 0), kw("minimum", n("1"))})},

	"setup.Sentinel.Params": {items: kw("pattern", "^(?:ip$|header:"+tokenRE+"$|query:[\\s\\S]|path:[\\s\\S])")},

	"setup.NacosDoc.Addr":    {required: true, keywords: kw("pattern", hostPort)},
	"setup.NacosDoc.DataID":  {required: true, keywords: kw("minLength", 1)},
	"setup.NacosDoc.Timeout": {duration: nonNegative},

	"setup.EtcdDoc.Endpoints": {required: true, keywords: kw("minItems", 1), items: kw("pattern", "[^"+strings.TrimPrefix(space, "["))}, // not blank
	"setup.EtcdDoc.Key":       {required: true, keywords: kw("minLength", 1)},
	"setup.EtcdDoc.Timeout":   {duration: nonNegative},

	"setup.ConsulDoc.Addr":    {required: true, keywords: kw("pattern", hostPort)},
	"setup.ConsulDoc.Key":     {required: true, keywords: kw("minLength", 1, "pattern", "^[^/]")},
	"setup.ConsulDoc.Timeout": {duration: nonNegative},
	"setup.ConsulDoc.Wait":    {duration: nonNegative},

	"setup.Reload.Interval": {duration: nonNegative},

	"setup.Exempt.Paths": {items: kw("pattern", "^/")},

	"setup.Deadline.Default": {duration: nonNegative},
	"setup.Deadline.Routes":  {duration: positive, keywords: kw("propertyNames", kw("pattern", route))},
	"setup.Deadline.Exempt":  {keywords: kw("uniqueItems", true), items: kw("pattern", route)},

	"sentinel.FlowRule.Resource":  {required: true, keywords: kw("minLength", 1)},
	"sentinel.FlowRule.Threshold": {required: true, keywords: kw("exclusiveMinimum", n("0"))},

	"sentinel.HotspotRule.Resource":    {required: true, keywords: kw("minLength", 1)},
	"sentinel.HotspotRule.Param":       {keywords: kw("minimum", n("0"))},
	"sentinel.HotspotRule.Threshold":   {required: true, keywords: kw("exclusiveMinimum", n("0"))},
	"sentinel.HotspotRule.DurationSec": {keywords: kw("minimum", n("0"))},

	"sentinel.SystemRule.Metric":    {required: true},
	"sentinel.SystemRule.Threshold": {required: true, keywords: kw("exclusiveMinimum", n("0"))},

	"sentinel.IsolationRule.Resource":       {required: true, keywords: kw("minLength", 1)},
	"sentinel.IsolationRule.MaxConcurrency": {required: true, keywords: kw("minimum", n("1"))},

	"sentinel.BreakerRule.Resource":  {required: true, keywords: kw("minLength", 1)},
	"sentinel.BreakerRule.Strategy":  {required: true},
	"sentinel.BreakerRule.Threshold": {keywords: kw("minimum", n("0"))},
}

// when is the condition "key is present and one of the set's values".
func when(key string, set choices.Set) *obj {
	return kw("required", []any{key}, "properties", kw(key, kw("type", "string", "pattern", setPattern(set))))
}

func oneOfSet(values ...string) choices.Set { return choices.Set{Values: values, Fold: true} }

// nonEmpty is the condition "key is present and holds something":
// a non-empty string, a non-null object or a non-empty list.
func nonEmpty(key, typ string) *obj {
	var s *obj
	switch typ {
	case "string":
		s = kw("type", "string", "minLength", 1)
	case "array":
		s = kw("type", "array", "minItems", 1)
	default:
		s = kw("type", typ)
	}
	return kw("required", []any{key}, "properties", kw(key, s))
}

// typeRules are the cross-field constraints of a type, by Go type.
var typeRules = map[string][]any{
	"setup.Sentinel": func() []any {
		rulesFile, nacos := nonEmpty("rules_file", "string"), nonEmpty("nacos", "object")
		var kinds []any
		for _, k := range []string{"flow", "hotspot", "system", "isolation", "circuitBreaker"} {
			kinds = append(kinds, nonEmpty(k, "array"))
		}
		rules := kw("required", []any{"rules"}, "properties", kw("rules", kw("type", "object", "anyOf", kinds)))
		return []any{
			kw("description", "One source of rules: rules, rules_file or nacos.",
				"not", kw("anyOf", []any{
					kw("allOf", []any{rules, rulesFile}),
					kw("allOf", []any{rules, nacos}),
					kw("allOf", []any{rulesFile, nacos}),
				})),
			kw("description", "Rules need Sentinel enabled.",
				"if", kw("anyOf", []any{rules, rulesFile, nacos}),
				"then", kw("required", []any{"enabled"}, "properties", kw("enabled", kw("const", true)))),
		}
	}(),
	"sentinel.FlowRule": {
		kw("description", "behavior warmup needs warmUpPeriodSec > 0; its warmUpColdFactor is not 1.",
			"if", when("behavior", oneOfSet("warmup")),
			"then", kw("required", []any{"warmUpPeriodSec"}, "properties", kw(
				"warmUpPeriodSec", kw("type", "integer", "minimum", n("1")),
				"warmUpColdFactor", kw("not", kw("const", 1))))),
	},
	"sentinel.HotspotRule": {
		kw("description", "burst is >= 0 for behavior reject, maxQueueingTimeMs >= 0 for throttle.",
			"if", when("behavior", oneOfSet("throttle")),
			"then", kw("properties", kw("maxQueueingTimeMs", kw("minimum", n("0")))),
			"else", kw("properties", kw("burst", kw("minimum", n("0"))))),
	},
	"sentinel.SystemRule": {
		kw("description", "strategy bbr applies to metrics load and cpu only.",
			"if", when("strategy", oneOfSet("bbr")),
			"then", when("metric", oneOfSet("load", "cpu"))),
		kw("description", "cpu is a usage in (0, 1].",
			"if", when("metric", oneOfSet("cpu")),
			"then", kw("properties", kw("threshold", kw("maximum", n("1"))))),
	},
	"sentinel.BreakerRule": {
		kw("description", "error_ratio and slow_ratio thresholds are ratios, in [0, 1].",
			"if", when("strategy", oneOfSet("error_ratio", "slow_ratio")),
			"then", kw("properties", kw("threshold", kw("maximum", n("1"))))),
		kw("description", "slow_ratio needs maxAllowedRtMs > 0.",
			"if", when("strategy", oneOfSet("slow_ratio")),
			"then", kw("required", []any{"maxAllowedRtMs"}, "properties", kw("maxAllowedRtMs", kw("type", "integer", "minimum", n("1"))))),
	},
}
