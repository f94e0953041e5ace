package examples_test

// TestREADME compiles every ```go block of ../README.md against the kit as
// it is in this tree (through this module's requirements and replace lines),
// so that what the README shows builds when copied. The rule for a block:
//
//   - A block whose first line starts with "package" is a complete file,
//     built as it is, in a package of its own.
//   - Any other block is a fragment: statements, the body of a function
//     with ctx (context.Context) and r (*gin.Engine) in scope. Its imports
//     are added from the package names it uses: the kit's packages by their
//     names (found with go list) and the standard and third-party packages
//     of fragmentImports. A name it declares at its top level counts as
//     used, so a fragment may leave a result unchecked. A fragment cannot
//     declare functions or types with methods: make it a complete file.
//
// The blocks are type-checked and vetted (go vet, which reports every error
// the compiler would) in a scratch directory of this module, removed at the
// end; //line directives make every error name the README's own line.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// fragmentImports are the packages outside the kit a fragment may use by
// name without importing them.
var fragmentImports = map[string]string{
	"context":    "context",
	"errors":     "errors",
	"fmt":        "fmt",
	"http":       "net/http",
	"log":        "log",
	"os":         "os",
	"slog":       "log/slog",
	"sql":        "database/sql",
	"time":       "time",
	"gin":        "github.com/gin-gonic/gin",
	"prometheus": "github.com/prometheus/client_golang/prometheus",
	"redis":      "github.com/redis/go-redis/v9",
}

// block is one ```go block of a Markdown file.
type block struct {
	line    int // line of the block's first code line
	section string
	code    string
}

// goBlocks returns the ```go blocks of a Markdown text.
func goBlocks(md []byte) ([]block, error) {
	var blocks []block
	var cur *block
	var code strings.Builder
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(md))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && strings.HasPrefix(line, "#"):
			section = strings.TrimSpace(strings.TrimLeft(line, "#"))
		case cur == nil && trimmed == "```go":
			cur = &block{line: n + 1, section: section}
			code.Reset()
		case cur != nil && trimmed == "```":
			cur.code = code.String()
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			code.WriteString(line)
			code.WriteByte('\n')
		}
	}
	if cur != nil {
		return nil, fmt.Errorf("the go block at line %d is not closed", cur.line)
	}
	return blocks, sc.Err()
}

// kitPackages maps the name of each public package of the kit's modules in
// this module's build list to its import path ("" when two share a name).
func kitPackages(t *testing.T) map[string]string {
	t.Helper()
	out, err := goTool(t, "list", "-f", "{{.Name}} {{.ImportPath}}", "github.com/gingov/gingov/...")
	if err != nil {
		t.Fatalf("go list github.com/gingov/gingov/...: %v\n%s", err, out)
	}
	pkgs := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		name, path, _ := strings.Cut(line, " ")
		if name == "main" || strings.Contains(path, "/internal/") || strings.Contains(path, "/examples") {
			continue
		}
		if _, dup := pkgs[name]; dup {
			pkgs[name] = ""
			continue
		}
		pkgs[name] = path
	}
	return pkgs
}

// fragmentFile turns a fragment into a Go file of package readme.
func fragmentFile(b block, file string, kit map[string]string) (string, error) {
	body := fmt.Sprintf("func _(ctx context.Context, r *gin.Engine) {\n\t_, _ = ctx, r\n\t{\n//line %s:%d:1\n%s\t}\n}\n", file, b.line, b.code)
	f, err := parser.ParseFile(token.NewFileSet(), file, "package readme\n"+body, 0)
	if err != nil {
		return "", fmt.Errorf("not a fragment of statements (make it a complete file starting with package): %w", err)
	}
	// The names the fragment declares at its top level.
	inner := f.Decls[0].(*ast.FuncDecl).Body.List[1].(*ast.BlockStmt)
	var declared []string
	add := func(id *ast.Ident) {
		if id.Name != "_" && !slices.Contains(declared, id.Name) {
			declared = append(declared, id.Name)
		}
	}
	for _, s := range inner.List {
		switch s := s.(type) {
		case *ast.AssignStmt:
			if s.Tok == token.DEFINE {
				for _, e := range s.Lhs {
					if id, ok := e.(*ast.Ident); ok {
						add(id)
					}
				}
			}
		case *ast.DeclStmt:
			if g, ok := s.Decl.(*ast.GenDecl); ok && g.Tok == token.VAR {
				for _, spec := range g.Specs {
					for _, id := range spec.(*ast.ValueSpec).Names {
						add(id)
					}
				}
			}
		}
	}
	// The packages it names: identifiers the parser could not resolve in
	// the file, looked up among the kit's packages, then the others.
	var imports []string
	for _, id := range f.Unresolved {
		p := kit[id.Name]
		if p == "" {
			p = fragmentImports[id.Name]
		}
		if p != "" && !slices.Contains(imports, p) {
			imports = append(imports, p)
		}
	}
	slices.Sort(imports)
	var src strings.Builder
	src.WriteString("package readme\n\nimport (\n")
	for _, p := range imports {
		fmt.Fprintf(&src, "\t%q\n", p)
	}
	src.WriteString(")\n\n")
	use := ""
	if len(declared) > 0 {
		use = strings.Repeat("_, ", len(declared)-1) + "_ = " + strings.Join(declared, ", ") + "\n"
	}
	fmt.Fprintf(&src, "func _(ctx context.Context, r *gin.Engine) {\n\t_, _ = ctx, r\n\t{\n//line %s:%d:1\n%s%s\t}\n}\n", file, b.line, b.code, use)
	return src.String(), nil
}

// buildBlocks writes every block of md into a scratch directory of this
// module and builds and vets them all; errors name the lines of file.
func buildBlocks(t *testing.T, md []byte, file string) (nblocks int, out string, err error) {
	t.Helper()
	blocks, err := goBlocks(md)
	if err != nil {
		return 0, "", err
	}
	kit := kitPackages(t)
	tmp, err := os.MkdirTemp(".", "_readme-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	var dirs []string
	var errs []string
	for _, b := range blocks {
		src := fmt.Sprintf("//line %s:%d:1\n%s", file, b.line, b.code)
		if !strings.HasPrefix(strings.TrimSpace(b.code), "package ") {
			if src, err = fragmentFile(b, file, kit); err != nil {
				errs = append(errs, fmt.Sprintf("%s:%d (%s): %v", file, b.line, b.section, err))
				continue
			}
		}
		dir := filepath.Join(tmp, "line"+strconv.Itoa(b.line))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "block.go"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, "./"+filepath.ToSlash(dir))
	}
	if len(dirs) == 0 {
		return len(blocks), strings.Join(errs, "\n"), errors.New("no block to build")
	}
	// go vet type-checks every block as the compiler would, without
	// linking programs (go build links each main package, ~10 s apiece);
	// the blocks it rejects are then compiled, for every compiler error
	// (vet stops at a package's first), which fails before linking.
	if o, err := goTool(t, append([]string{"vet"}, dirs...)...); err != nil {
		var failed []string
		for _, m := range regexp.MustCompile(`(?m)^# \S+/(_readme-[^/\s]+/line\d+)$`).FindAllStringSubmatch(o, -1) {
			failed = append(failed, "./"+m[1])
		}
		if len(failed) > 0 {
			if bo, err := goTool(t, append([]string{"build"}, failed...)...); err != nil {
				o = bo
			}
		}
		errs = append(errs, annotate(o, file, blocks))
	}
	if len(errs) > 0 {
		return len(blocks), strings.Join(errs, "\n"), errors.New("blocks do not compile")
	}
	return len(blocks), "", nil
}

// goTool runs the go command in this module with GOWORK=off.
func goTool(t *testing.T, args ...string) (string, error) {
	cmd := exec.CommandContext(t.Context(), "go", args...)
	cmd.Env = append(os.Environ(), "GOWORK=off")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// annotate adds, after each error naming a line of file, the block and the
// section that line belongs to.
func annotate(out, file string, blocks []block) string {
	// The go command may print the file's path relative to this module.
	re := regexp.MustCompile(`(?:^|[\s/])` + regexp.QuoteMeta(filepath.Base(file)) + `:(\d+)`)
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		b.WriteString(line)
		if m := re.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[1])
			for i := len(blocks) - 1; i >= 0; i-- {
				if blocks[i].line <= n {
					fmt.Fprintf(&b, "    [block at %s:%d, section %q]", filepath.Base(file), blocks[i].line, blocks[i].section)
					break
				}
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func TestREADME(t *testing.T) {
	readme, err := filepath.Abs("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	n, out, err := buildBlocks(t, md, readme)
	if err != nil {
		t.Fatalf("%v: the README's Go blocks must compile (the rule for a block is in examples/readme_test.go):\n%s", err, out)
	}
	if n == 0 {
		t.Fatal("README.md has no ```go block")
	}
	t.Logf("%d Go blocks of README.md compile", n)
}

// TestREADMEBroken checks that TestREADME can fail, naming the lines: a
// fragment with two errors (both reported), a complete file that does not
// compile, and a fragment that does.
func TestREADMEBroken(t *testing.T) {
	md := "# T\n\n```go\nlimiter, err := ratelimit.New(rdb)\nuser := currentUser\n```\n\n## U\n\n" +
		"```go\npackage main\n\nfunc main() { undefinedCall() }\n```\n\n" +
		"```go\nreg := prometheus.NewRegistry()\nlogger := slog.New(slog.NewJSONHandler(os.Stdout, nil))\n```\n"
	_, out, err := buildBlocks(t, []byte(md), "/README/BROKEN.md")
	if err == nil {
		t.Fatal("broken blocks compiled")
	}
	for _, want := range []string{
		"/README/BROKEN.md:4:31: undefined: rdb",
		"/README/BROKEN.md:5:9: undefined: currentUser",
		`[block at BROKEN.md:4, section "T"]`,
		"/README/BROKEN.md:13:15: undefined: undefinedCall",
		`[block at BROKEN.md:11, section "U"]`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "BROKEN.md:18") || strings.Contains(out, "BROKEN.md:19") {
		t.Errorf("the good fragment failed:\n%s", out)
	}
}
