package setup

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// decodeError turns a decoding error of data into "setup: <field>: ...",
// naming the field by its YAML path as Validate does (the part after
// "setup: " is wrapped, for Load to put the file name in front). The YAML library
// gives the position of most errors, not the field; a malformed duration
// comes with neither.
func decodeError(data []byte, err error) error {
	var ye yaml.Error
	if errors.As(err, &ye) {
		msg := yaml.FormatError(err, false, true)
		if tk := ye.GetToken(); tk != nil && tk.Position != nil {
			if field := fieldAtPos(data, tk.Position.Offset, tk.Position.Line, tk.Position.Column); field != "" {
				msg = field + ": " + msg
			}
		}
		return fmt.Errorf("setup: %w", errors.New(msg))
	}
	if field, val, ok := badDuration(data); ok {
		return fmt.Errorf("setup: %w", fmt.Errorf("%s: %q is not a duration (e.g. 1s, 1m)", field, val))
	}
	return fmt.Errorf("setup: %w", err)
}

// walker visits every node of a document.
type walker func(ast.Node)

func (w walker) Visit(n ast.Node) ast.Visitor {
	w(n)
	return w
}

func walk(data []byte, fn func(ast.Node)) bool {
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return false
	}
	for _, doc := range f.Docs {
		ast.Walk(walker(fn), doc)
	}
	return true
}

// fieldAtPos is the YAML path of the most specific node at a position.
func fieldAtPos(data []byte, offset, line, column int) string {
	var field string
	walk(data, func(n ast.Node) {
		tk := n.GetToken()
		if tk == nil || tk.Position == nil {
			return
		}
		p := tk.Position
		if p.Offset == offset && p.Line == line && p.Column == column {
			if f := yamlPath(n); len(f) > len(field) {
				field = f
			}
		}
	})
	return field
}

// yamlPath is a node's path without the library's "$." root: "ratelimit.rules[0].period".
func yamlPath(n ast.Node) string {
	return strings.TrimPrefix(strings.TrimPrefix(n.GetPath(), "$"), ".")
}

var index = regexp.MustCompile(`\[\d+\]`)

// durationFields are the YAML paths of the duration fields of Config, with
// "[]" for any list index.
var durationFields = func() map[string]bool {
	out := map[string]bool{}
	var collect func(t reflect.Type, prefix string)
	collect = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			sf := t.Field(i)
			tag, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
			if !sf.IsExported() || tag == "" || tag == "-" {
				continue
			}
			name := prefix + tag
			ft := sf.Type
			for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
				if ft.Kind() == reflect.Slice {
					name += "[]"
				}
				ft = ft.Elem()
			}
			switch {
			case ft == reflect.TypeFor[time.Duration]():
				out[name] = true
			case ft.Kind() == reflect.Struct:
				collect(ft, name+".")
			}
		}
	}
	collect(reflect.TypeFor[Config](), "")
	return out
}()

// badDuration finds the first duration field of data whose text does not
// parse as a duration.
func badDuration(data []byte) (field, val string, found bool) {
	walk(data, func(n ast.Node) {
		mv, ok := n.(*ast.MappingValueNode)
		if found || !ok {
			return
		}
		s, ok := mv.Value.(*ast.StringNode)
		if !ok {
			return
		}
		path := yamlPath(mv)
		if !durationFields[index.ReplaceAllString(path, "[]")] {
			return
		}
		if _, err := time.ParseDuration(s.Value); err != nil {
			field, val, found = path, s.Value, true
		}
	})
	return field, val, found
}
