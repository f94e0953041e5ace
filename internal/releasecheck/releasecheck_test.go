package main

import (
	"archive/zip"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const testVersions = `# comment
version v0.1.0
module .
module sub     # the sub module
unreleased examples
`

func TestParseVersions(t *testing.T) {
	v, err := parseVersions([]byte(testVersions))
	if err != nil {
		t.Fatal(err)
	}
	if v.Version != "v0.1.0" || !slices.Equal(v.Released, []string{".", "sub"}) || !slices.Equal(v.Unreleased, []string{"examples"}) {
		t.Fatalf("parsed %+v", v)
	}
	for _, tc := range []struct{ text, want string }{
		{"module .\n", "no \"version"},
		{"version 0.1.0\nmodule .\n", "not a version"},
		{"version v0.1\nmodule .\n", "not a version"},
		{"version v0.1.0+meta\nmodule .\n", "not a version"},
		{"version v2.0.0\nmodule .\n", "major version"},
		{"version v0.1.0\nversion v0.2.0\nmodule .\n", "second version"},
		{"version v0.1.0\nmodule sub\nmodule .\n", "first released module must be the root"},
		{"version v0.1.0\nmodule .\nunreleased .\n", "already listed on line 2"},
		{"version v0.1.0\nmodule .\nmodule ../x\n", "not a clean relative directory"},
		{"version v0.1.0\nmodule .\nrelease x\n", "unknown keyword"},
		{"version v0.1.0 extra\nmodule .\n", "KEYWORD VALUE"},
	} {
		if _, err := parseVersions([]byte(tc.text)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseVersions(%q) = %v, want an error containing %q", tc.text, err, tc.want)
		}
	}
}

func TestSetVersionLine(t *testing.T) {
	out, err := setVersionLine([]byte(testVersions), "v0.2.0")
	if err != nil {
		t.Fatal(err)
	}
	v, err := parseVersions(out)
	if err != nil || v.Version != "v0.2.0" {
		t.Fatalf("after setVersionLine: %+v, %v", v, err)
	}
	if !strings.Contains(string(out), "# comment\n") || !strings.Contains(string(out), "module sub     # the sub module\n") {
		t.Errorf("setVersionLine changed other lines:\n%s", out)
	}
}

// writeRepo writes a repository of go.mod files (and other files) under a
// temp dir and returns it.
func writeRepo(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, text := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

const (
	rootMod = "module example.com/kit\n\ngo 1.26.0\n"
	subMod  = "module example.com/kit/sub\n\ngo 1.26.0\n\nrequire example.com/kit %s\n\nreplace example.com/kit => ../\n"
	exMod   = "module example.com/kit/examples\n\ngo 1.26.0\n\nrequire (\n\texample.com/kit v0.1.0\n\texample.com/kit/sub %s\n)\n\nreplace (\n\texample.com/kit => ../\n\texample.com/kit/sub => ../sub\n)\n"
)

func checkRepo(t *testing.T, versionsText string, files map[string]string) error {
	t.Helper()
	files["versions"] = versionsText
	root := writeRepo(t, files)
	v, mods, err := load(root)
	if err != nil {
		return err
	}
	return checkModules(mods, v)
}

func TestCheckModules(t *testing.T) {
	ok := func(sub, ex string) map[string]string {
		return map[string]string{
			"go.mod":          rootMod,
			"sub/go.mod":      sub,
			"examples/go.mod": ex,
		}
	}
	good := ok(strings.Replace(subMod, "%s", "v0.1.0", 1), strings.Replace(exMod, "%s", "v0.1.0", 1))
	if err := checkRepo(t, testVersions, good); err != nil {
		t.Fatalf("a consistent repository: %v", err)
	}
	for _, tc := range []struct {
		name     string
		versions string
		files    map[string]string
		want     string
	}{
		{"v0.0.0", testVersions, ok(strings.Replace(subMod, "%s", "v0.0.0", 1), strings.Replace(exMod, "%s", "v0.1.0", 1)),
			"sub/go.mod:5: require example.com/kit v0.0.0: a version that will never exist"},
		{"zero pseudo-version", testVersions, ok(strings.Replace(subMod, "%s", "v0.0.0-00010101000000-000000000000", 1), strings.Replace(exMod, "%s", "v0.1.0", 1)),
			"a version that will never exist"},
		{"other version", testVersions, ok(strings.Replace(subMod, "%s", "v0.0.9", 1), strings.Replace(exMod, "%s", "v0.1.0", 1)),
			"require example.com/kit v0.0.9: not the kit's version v0.1.0"},
		{"unreleased examples' requirement", testVersions, ok(strings.Replace(subMod, "%s", "v0.1.0", 1), strings.Replace(exMod, "%s", "v0.0.0", 1)),
			"examples/go.mod:7: require example.com/kit/sub v0.0.0"},
		{"tag order", "version v0.1.0\nmodule .\nmodule examples\nmodule sub\n", good,
			"sub must be tagged before examples"},
		{"requires an unreleased module", "version v0.1.0\nmodule .\nunreleased sub\nmodule examples\n", good,
			"require example.com/kit/sub v0.1.0: that module is never released"},
		{"unlisted go.mod", "version v0.1.0\nmodule .\nmodule sub\n", good,
			"examples/go.mod: module not listed in versions"},
		{"listed, missing", testVersions + "module gone\n", good,
			"gone is listed but gone/go.mod does not exist"},
		{"no replace", testVersions, ok("module example.com/kit/sub\n\ngo 1.26.0\n\nrequire example.com/kit v0.1.0\n", strings.Replace(exMod, "%s", "v0.1.0", 1)),
			"no replace line: add \"replace example.com/kit => ..\""},
		{"replace elsewhere", testVersions, ok("module example.com/kit/sub\n\ngo 1.26.0\n\nrequire example.com/kit v0.1.0\n\nreplace example.com/kit => ../examples\n", strings.Replace(exMod, "%s", "v0.1.0", 1)),
			"want the directory ."},
		{"module path", testVersions, ok(strings.Replace(strings.Replace(subMod, "%s", "v0.1.0", 1), "kit/sub", "kit/other", 1), strings.Replace(exMod, "%s", "v0.1.0", 1)),
			"sub/go.mod: module example.com/kit/other, want example.com/kit/sub"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkRepo(t, tc.versions, tc.files)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestSetRequirements(t *testing.T) {
	root := writeRepo(t, map[string]string{
		"versions":        testVersions,
		"go.mod":          rootMod,
		"sub/go.mod":      strings.Replace(subMod, "%s", "v0.0.0-00010101000000-000000000000", 1),
		"examples/go.mod": strings.Replace(exMod, "%s", "v0.0.0", 1),
	})
	if err := setVersion(root, "v0.2.0", t.Logf); err != nil {
		t.Fatal(err)
	}
	v, mods, err := load(root)
	if err != nil {
		t.Fatal(err)
	}
	if v.Version != "v0.2.0" {
		t.Errorf("versions says %s, want v0.2.0", v.Version)
	}
	if err := checkModules(mods, v); err != nil {
		t.Errorf("after set-version: %v", err)
	}
	ex, err := os.ReadFile(filepath.Join(root, "examples", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Replace(strings.Replace(exMod, "v0.1.0", "v0.2.0", 1), "%s", "v0.2.0", 1); string(ex) != want {
		t.Errorf("examples/go.mod after set-version:\n%s\nwant:\n%s", ex, want)
	}
	if err := setVersion(root, "0.3", t.Logf); err == nil {
		t.Error("set-version 0.3: no error")
	}
}

func TestIsPublic(t *testing.T) {
	for _, tc := range []struct {
		path, name string
		want       bool
	}{
		{"example.com/kit/tracing", "tracing", true},
		{"example.com/kit/registry/registrytest", "registrytest", true},
		{"example.com/kit/internal/x", "x", false},
		{"example.com/kit/errcode/internal/gendoc", "main", false},
		{"example.com/kit/cmd/tool", "main", false},
	} {
		if got := isPublic(tc.path, tc.name); got != tc.want {
			t.Errorf("isPublic(%s, %s) = %v, want %v", tc.path, tc.name, got, tc.want)
		}
	}
}

// TestZipLeavesOutNestedModules: the root module's zip holds the root's
// files but none of a nested module's, as a tag would.
func TestZipLeavesOutNestedModules(t *testing.T) {
	root := writeRepo(t, map[string]string{
		"versions":        testVersions,
		"go.mod":          rootMod,
		"a.go":            "package kit\n",
		"pkg/b.go":        "package pkg\n",
		"sub/go.mod":      strings.Replace(subMod, "%s", "v0.1.0", 1),
		"sub/c.go":        "package sub\n",
		"examples/go.mod": strings.Replace(exMod, "%s", "v0.1.0", 1),
	})
	_, mods, err := load(root)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "kit.zip")
	if _, err := writeZip(context.Background(), root, mods[slices.IndexFunc(mods, func(m *gomod) bool { return m.Dir == "." })], "v0.1.0", file); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.OpenReader(file)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var names []string
	for _, f := range zr.File {
		names = append(names, strings.TrimPrefix(f.Name, "example.com/kit@v0.1.0/"))
	}
	slices.Sort(names)
	if want := []string{"a.go", "go.mod", "pkg/b.go", "versions"}; !slices.Equal(names, want) {
		t.Errorf("zip holds %v, want %v", names, want)
	}
}

// TestPublicPackages: go list finds the public packages of a module, and an
// import of another module's internal package is an error.
func TestPublicPackages(t *testing.T) {
	root := writeRepo(t, map[string]string{
		"versions":            testVersions,
		"go.mod":              rootMod,
		"kit.go":              "package kit\n",
		"internal/x/x.go":     "package x\n",
		"cmd/tool/main.go":    "package main\n\nfunc main() {}\n",
		"onlytests/a_test.go": "package onlytests\n",
		"sub/go.mod":          strings.Replace(subMod, "%s", "v0.1.0", 1),
		"sub/sub.go":          "package sub\n\nimport _ \"example.com/kit/internal/x\"\n",
		"sub/internal/y/y.go": "package y\n",
		"examples/go.mod":     strings.Replace(exMod, "%s", "v0.1.0", 1),
	})
	_, mods, err := load(root)
	if err != nil {
		t.Fatal(err)
	}
	owner := func(p string) string {
		if strings.HasPrefix(p, "example.com/kit/sub") {
			return "example.com/kit/sub"
		}
		return "example.com/kit"
	}
	env := withEnv(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "GOPROXY=off")
	byDir := map[string]*gomod{}
	for _, m := range mods {
		byDir[m.Dir] = m
	}
	pkgs, err := publicPackages(context.Background(), root, byDir["."], env, owner)
	if err != nil || !slices.Equal(pkgs, []string{"example.com/kit"}) {
		t.Errorf("root: %v, %v; want [example.com/kit] and no error", pkgs, err)
	}
	pkgs, err = publicPackages(context.Background(), root, byDir["sub"], env, owner)
	if want := "example.com/kit/sub imports example.com/kit/internal/x, an internal package of module example.com/kit"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("sub: error %v, want one containing %q", err, want)
	}
	if !slices.Equal(pkgs, []string{"example.com/kit/sub"}) {
		t.Errorf("sub: %v, want [example.com/kit/sub]", pkgs)
	}
}
