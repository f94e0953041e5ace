// Package schema derives the JSON Schema (draft 2020-12) of gingov.yaml
// from setup's configuration types: property names from the yaml tags,
// types from the Go types (durations are Go duration strings), descriptions
// from the fields' doc comments, enums from package choices (the sets
// setup's validation checks), and the constraints of setup's validation
// from the table in rules.go. Unknown keys are errors, as in setup.Parse.
//
// A field added to a configuration type needs nothing here: its type and
// doc comment make its schema. A constraint that validation enforces
// belongs in rules.go; a fixed set of values belongs in package choices.
package schema

import (
	"bytes"
	"context"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os/exec"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/gingov/gingov/setup"
	"github.com/gingov/gingov/setup/internal/choices"
)

// ID is the schema's $id: where the main branch publishes it, and the URL
// editors are pointed at.
const ID = "https://raw.githubusercontent.com/gingov/gingov/main/setup/gingov.schema.json"

// Generate returns the schema of setup.Config, indented, with a final
// newline: the bytes of setup/gingov.schema.json. Doc comments are read
// from the source of the configuration types' packages, found with
// "go list" (run it where those packages resolve: in the setup module).
func Generate(ctx context.Context) ([]byte, error) {
	g := &generator{ctx: ctx, docs: map[string]*pkgDocs{}, defs: map[string]*obj{}, names: map[reflect.Type]string{}, seen: map[string]bool{}}
	root, err := g.structSchema(reflect.TypeFor[setup.Config]())
	if err != nil {
		return nil, err
	}
	out := &obj{}
	out.set("$schema", "https://json-schema.org/draft/2020-12/schema")
	out.set("$id", ID)
	out.set("title", "gingov.yaml")
	for _, table := range []map[string]bool{keys(fieldRules), keys(typeRules), keys(choices.ByField)} {
		for k := range table {
			if !g.seen[k] {
				return nil, fmt.Errorf("schema: rules.go or package choices names %s, which is no field or type of the configuration", k)
			}
		}
	}
	root.set("type", "object") // the document itself is a mapping, never null
	out.merge(root)
	defs := &obj{}
	for _, name := range slices.Sorted(maps.Keys(g.defs)) {
		defs.set(name, g.defs[name])
	}
	out.set("$defs", defs)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

type generator struct {
	ctx   context.Context
	docs  map[string]*pkgDocs     // by package path
	defs  map[string]*obj         // $defs by name
	names map[reflect.Type]string // struct type → its $defs name
	seen  map[string]bool         // the types and fields met, by typeKey
}

func keys[V any](m map[string]V) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

// typeKey is how choices and rules name a type: "setup.Log".
func typeKey(t reflect.Type) string { return t.String() }

var durationType = reflect.TypeFor[time.Duration]()

// ref is the schema of a struct type used as a value: a $ref to its
// definition, built on first use.
func (g *generator) ref(t reflect.Type) (*obj, error) {
	name, ok := g.names[t]
	if !ok {
		name = t.Name()
		for _, other := range g.names {
			if other == name {
				name = strings.ReplaceAll(typeKey(t), ".", "_")
			}
		}
		g.names[t] = name
		def, err := g.structSchema(t)
		if err != nil {
			return nil, err
		}
		g.defs[name] = def
	}
	return (&obj{}).set("$ref", "#/$defs/"+name), nil
}

// structSchema is the object schema of a struct type: its description,
// properties in field order, required keys and cross-field rules.
func (g *generator) structSchema(t reflect.Type) (*obj, error) {
	docs, err := g.pkg(t.PkgPath())
	if err != nil {
		return nil, err
	}
	g.seen[typeKey(t)] = true
	s := &obj{}
	if d := docs.types[t.Name()]; d != "" {
		s.set("description", d)
	}
	s.set("type", []any{"object", "null"}) // null (or an empty key) is the zero value: every default
	props := &obj{}
	var required []string
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if f.Anonymous || opts != "" && opts != "omitempty" || name == "" {
			return nil, fmt.Errorf("schema: %s.%s: yaml tag %q: only named keys are supported", typeKey(t), f.Name, f.Tag.Get("yaml"))
		}
		key := typeKey(t) + "." + f.Name
		g.seen[key] = true
		r := fieldRules[key]
		fs, err := g.valueSchema(f.Type, key, r)
		if err != nil {
			return nil, err
		}
		if r.required {
			required = append(required, name)
			if fs.get("$ref") != nil {
				fs = notNull(fs) // the zero value is invalid
			}
		} else {
			nullable(fs)
		}
		if d := docs.fields[t.Name()+"."+f.Name]; d != "" {
			fs.setFirst("description", d)
		}
		props.set(name, fs)
	}
	s.set("properties", props)
	s.set("additionalProperties", false)
	if len(required) > 0 {
		s.set("required", required)
	}
	if x := typeRules[typeKey(t)]; len(x) > 0 {
		s.set("allOf", x)
	}
	return s, nil
}

// valueSchema is the schema of a value of type t, held by the field key
// (its rules apply to it, or to its items and map values).
func (g *generator) valueSchema(t reflect.Type, key string, r rule) (*obj, error) {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if r.schema != nil {
		return r.schema, nil
	}
	if t != durationType && customDecoding(t) {
		return nil, fmt.Errorf("schema: %s: type %s decodes itself from YAML: give the field its schema in rules.go", key, t)
	}
	var s *obj
	switch {
	case t == durationType:
		s = (&obj{}).set("type", "string").set("pattern", r.duration.pattern()).
			set("examples", []string{"1s", "250ms", "1m30s"}) // Go durations: a bare number is not one
	case t.Kind() == reflect.Struct:
		return g.ref(t)
	case t.Kind() == reflect.String:
		s = (&obj{}).set("type", "string")
		if set, ok := choices.ByField[key]; ok {
			enum(s, set)
		}
	case t.Kind() == reflect.Bool:
		s = (&obj{}).set("type", "boolean")
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		bits := t.Bits()
		s = (&obj{}).set("type", "integer").
			set("minimum", json.Number("-"+strconv.FormatUint(1<<(bits-1), 10))).
			set("maximum", json.Number(strconv.FormatUint(1<<(bits-1)-1, 10)))
	case t.Kind() >= reflect.Uint && t.Kind() <= reflect.Uint64:
		s = (&obj{}).set("type", "integer").set("minimum", json.Number("0")).
			set("maximum", json.Number(strconv.FormatUint(math.MaxUint64>>(64-t.Bits()), 10)))
	case t.Kind() == reflect.Float64 || t.Kind() == reflect.Float32:
		s = (&obj{}).set("type", "number")
	case t.Kind() == reflect.Slice:
		items, err := g.valueSchema(t.Elem(), key, rule{duration: r.duration})
		if err != nil {
			return nil, err
		}
		if t.Elem().Kind() == reflect.Struct {
			items = notNull(items) // a null item would be a zero rule
		}
		items.merge(r.items)
		s = (&obj{}).set("type", "array").set("items", items)
	case t.Kind() == reflect.Map && t.Key().Kind() == reflect.String:
		vals, err := g.valueSchema(t.Elem(), key, rule{duration: r.duration})
		if err != nil {
			return nil, err
		}
		vals.merge(r.items)
		s = (&obj{}).set("type", "object").set("additionalProperties", vals)
	default:
		return nil, fmt.Errorf("schema: %s: type %s has no JSON Schema form here", key, t)
	}
	s.merge(r.keywords)
	return s, nil
}

// customDecoding reports whether the YAML decoder hands values of t to
// t's own method, whose accepted forms the Go type does not tell.
func customDecoding(t reflect.Type) bool {
	for _, iface := range []reflect.Type{
		reflect.TypeFor[yaml.BytesUnmarshaler](), reflect.TypeFor[yaml.BytesUnmarshalerContext](),
		reflect.TypeFor[yaml.InterfaceUnmarshaler](), reflect.TypeFor[yaml.InterfaceUnmarshalerContext](),
		reflect.TypeFor[yaml.NodeUnmarshaler](), reflect.TypeFor[yaml.NodeUnmarshalerContext](),
		reflect.TypeFor[encoding.TextUnmarshaler](),
	} {
		if t.Implements(iface) || reflect.PointerTo(t).Implements(iface) {
			return true
		}
	}
	return false
}

// enum gives a string schema the set's values: an enum when they are
// matched exactly, else a pattern (any case, white space around) with
// the values as examples, which editors offer for completion.
func enum(s *obj, set choices.Set) {
	if !set.Fold && !set.Trim {
		var vals []any
		if set.Empty {
			vals = append(vals, "")
		}
		for _, v := range set.Values {
			vals = append(vals, v)
		}
		s.set("enum", vals)
		return
	}
	s.set("pattern", setPattern(set))
	s.set("examples", set.Values)
}

// setPattern matches the values of a set as set.Has does.
func setPattern(set choices.Set) string {
	var alts []string
	for _, v := range set.Values {
		var b strings.Builder
		for _, c := range v {
			lo, up := strings.ToLower(string(c)), strings.ToUpper(string(c))
			switch {
			case set.Fold && lo != up:
				b.WriteString("[" + lo + up + "]")
			case strings.ContainsRune(`\^$.|?*+()[]{}/-`, c):
				b.WriteString(`\` + string(c))
			default:
				b.WriteRune(c)
			}
		}
		alts = append(alts, b.String())
	}
	body := "(?:" + strings.Join(alts, "|") + ")"
	if set.Empty {
		body += "?"
	}
	if set.Trim {
		return "^" + space + "*" + body + space + "*$"
	}
	return "^" + body + "$"
}

// notNull is a struct type's $ref that does not take null. The $ref sits
// in an allOf: draft-07 validators, editors' among them, ignore the
// siblings of a $ref.
func notNull(ref *obj) *obj {
	return (&obj{}).set("type", "object").set("allOf", []any{ref})
}

// nullable lets a field be null (or an empty key): the decoder then keeps
// its zero value, the default.
func nullable(s *obj) {
	switch t := s.get("type").(type) {
	case string:
		s.set("type", []any{t, "null"})
		if e, ok := s.get("enum").([]any); ok {
			s.set("enum", append(e, nil))
		}
	case nil: // a $ref: struct definitions accept null themselves
	}
}

// obj is a JSON object that keeps its keys in insertion order.
type obj struct{ kvs []kv }

type kv struct {
	k string
	v any
}

func (o *obj) get(k string) any {
	for _, x := range o.kvs {
		if x.k == k {
			return x.v
		}
	}
	return nil
}

func (o *obj) set(k string, v any) *obj {
	for i, x := range o.kvs {
		if x.k == k {
			o.kvs[i].v = v
			return o
		}
	}
	o.kvs = append(o.kvs, kv{k, v})
	return o
}

// setFirst sets k as the first key (descriptions read first).
func (o *obj) setFirst(k string, v any) {
	o.kvs = slices.DeleteFunc(o.kvs, func(x kv) bool { return x.k == k })
	o.kvs = append([]kv{{k, v}}, o.kvs...)
}

func (o *obj) merge(from *obj) {
	if from == nil {
		return
	}
	for _, x := range from.kvs {
		o.set(x.k, x.v)
	}
}

// MarshalJSON writes the keys in order.
func (o *obj) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, x := range o.kvs {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := marshal(x.k)
		if err != nil {
			return nil, err
		}
		v, err := marshal(x.v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", x.k, err)
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// goList is the source directory of a package.
func goList(ctx context.Context, pkg string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "list", "-f", "{{.Dir}}", pkg).Output()
	if err != nil {
		var stderr string
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			stderr = string(ee.Stderr)
		}
		return "", fmt.Errorf("schema: go list %s: %w %s", pkg, err, stderr)
	}
	return strings.TrimSpace(string(out)), nil
}
