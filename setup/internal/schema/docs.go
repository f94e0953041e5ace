package schema

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
)

// pkgDocs are the doc comments of a package's struct types and fields.
type pkgDocs struct {
	types  map[string]string // "Log"
	fields map[string]string // "Log.Level"
}

func (g *generator) pkg(path string) (*pkgDocs, error) {
	if d, ok := g.docs[path]; ok {
		return d, nil
	}
	dir, err := goList(g.ctx, path)
	if err != nil {
		return nil, err
	}
	d, err := readDocs(dir)
	if err != nil {
		return nil, err
	}
	g.docs[path] = d
	return d, nil
}

// readDocs parses the non-test Go files of dir.
func readDocs(dir string) (*pkgDocs, error) {
	d := &pkgDocs{types: map[string]string{}, fields: map[string]string{}}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, spec := range gd.Specs {
				ts := spec.(*ast.TypeSpec)
				st, ok := ts.Type.(*ast.StructType)
				if !ok {
					continue
				}
				doc := ts.Doc
				if doc == nil && len(gd.Specs) == 1 {
					doc = gd.Doc
				}
				d.types[ts.Name.Name] = text(doc)
				for _, fl := range st.Fields.List {
					c := fl.Doc
					if c == nil {
						c = fl.Comment
					}
					for _, n := range fl.Names {
						d.fields[ts.Name.Name+"."+n.Name] = text(c)
					}
				}
			}
		}
	}
	return d, nil
}

// text is a doc comment as a description: the lines of a paragraph
// joined, paragraphs and indented (code) lines kept on lines of their own.
func text(c *ast.CommentGroup) string {
	if c == nil {
		return ""
	}
	var b strings.Builder
	prevCode := false
	for i, line := range strings.Split(strings.TrimSpace(c.Text()), "\n") {
		code := strings.HasPrefix(line, "\t") || strings.HasPrefix(line, "  ")
		switch {
		case i == 0:
		case line == "":
			b.WriteString("\n")
			prevCode = false
			continue
		case code || prevCode || strings.HasSuffix(b.String(), "\n"):
			b.WriteString("\n")
		default:
			b.WriteString(" ")
		}
		if code {
			line = "    " + strings.TrimSpace(line)
		}
		b.WriteString(line)
		prevCode = code
	}
	return b.String()
}
