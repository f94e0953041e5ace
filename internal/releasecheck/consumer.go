package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// goCmd runs the go command in dir with env and returns its combined
// output; an error carries the command line and the output.
func goCmd(ctx context.Context, dir string, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return string(out), fmt.Errorf("go %s (in %s): %w\n%s", strings.Join(args, " "), dir, err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// withEnv returns base with the given KEY=value pairs replacing any
// setting of the same keys.
func withEnv(base []string, kv ...string) []string {
	keys := map[string]bool{}
	for _, s := range kv {
		k, _, _ := strings.Cut(s, "=")
		keys[k] = true
	}
	var env []string
	for _, s := range base {
		k, _, _ := strings.Cut(s, "=")
		if !keys[k] {
			env = append(env, s)
		}
	}
	return append(env, kv...)
}

// isPublic reports whether a consumer may import the package: not under
// an internal directory, not a command, not testdata.
func isPublic(importPath, name string) bool {
	if name == "main" || strings.HasSuffix(name, "_test") {
		return false
	}
	return !isInternal(importPath) && !strings.Contains("/"+importPath+"/", "/testdata/")
}

// publicPackages lists, with go list in the module's directory, every
// package of m a consumer may import. Directories holding only tests are
// skipped; any other package error fails the check, and so does an import
// of another module's internal package (owner names the module of a path):
// it would tie m to that module's unexported code at whatever version a
// consumer selects.
func publicPackages(ctx context.Context, root string, m *gomod, env []string, owner func(string) string) ([]string, error) {
	dir := filepath.Join(root, filepath.FromSlash(m.Dir))
	out, err := goCmd(ctx, dir, env, "list", "-e", "-f",
		"{{.ImportPath}}\t{{.Name}}\t{{len .GoFiles}}\t{{join .Imports \" \"}}\t{{if .Error}}{{.Error.Err}}{{end}}", "./...")
	if err != nil {
		return nil, err
	}
	var pkgs []string
	var errs []error
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), "\t", 5)
		if len(f) != 5 {
			return nil, fmt.Errorf("go list in %s: unexpected line %q", m.Dir, sc.Text())
		}
		ip, name, nfiles, imports, perr := f[0], f[1], f[2], f[3], f[4]
		if nfiles == "0" {
			continue // tests only, or no file for this platform
		}
		if perr != "" {
			return nil, fmt.Errorf("go list in %s: %s: %s", m.Dir, ip, perr)
		}
		for _, imp := range strings.Fields(imports) {
			if o := owner(imp); o != "" && o != m.Path && isInternal(strings.TrimPrefix(imp, o)) {
				errs = append(errs, fmt.Errorf("%s imports %s, an internal package of module %s: across modules use exported API only", ip, imp, o))
			}
		}
		if isPublic(ip, name) {
			pkgs = append(pkgs, ip)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return pkgs, errors.Join(errs...)
}

// isInternal reports whether an import path has an internal element.
func isInternal(p string) bool {
	for _, e := range strings.Split(p, "/") {
		if e == "internal" {
			return true
		}
	}
	return false
}

// consumer is the fresh module outside the repository that adopts the kit.
type consumer struct {
	root     string // repository root
	tmp      string // scratch directory (proxy, module cache, consumer)
	version  string
	rootPath string
	mods     []*gomod // released modules, in tag order
	pkgs     []string // public packages of the released modules
	log      func(format string, args ...any)
}

// run builds and vets, in a fresh module with no replace directive, a
// program importing every public package, after go get of every released
// module except the root, which must come in through their requirements
// at the declared version.
func (c *consumer) run(ctx context.Context, proxyDir string) error {
	dir := filepath.Join(c.tmp, "consumer")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	gomod := "// A module outside the gingov repository, written by make release-check.\nmodule example.com/consumer\n\ngo 1.26.0\n"
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o644); err != nil {
		return err
	}
	// The released modules' go.sum lines (hashes the go command checked
	// against the checksum database when they were added) spare a lookup
	// per third-party module; anything missing is looked up as usual.
	sum, err := c.seedSum()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o644); err != nil {
		return err
	}
	var src strings.Builder
	src.WriteString("// Command consumer imports every public package of every released gingov\n// module (written by make release-check).\npackage main\n\nimport (\n")
	for _, p := range c.pkgs {
		fmt.Fprintf(&src, "\t_ %q\n", p)
	}
	src.WriteString(")\n\nfunc main() {}\n")
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src.String()), 0o644); err != nil {
		return err
	}

	realCache, err := goCmd(ctx, dir, os.Environ(), "env", "GOMODCACHE")
	if err != nil {
		return err
	}
	upstream, err := goCmd(ctx, dir, os.Environ(), "env", "GOPROXY")
	if err != nil {
		return err
	}
	// The module cache already on this machine serves as a proxy for the
	// third-party modules (no network when it is warm); the usual proxy
	// follows for the rest. A module cache of its own keeps the gingov
	// modules of this run apart from any earlier one; -trimpath lets the
	// build cache be shared with earlier runs all the same.
	goproxy := "file://" + filepath.ToSlash(proxyDir) +
		",file://" + filepath.ToSlash(filepath.Join(strings.TrimSpace(realCache), "cache", "download"))
	if up := strings.TrimSpace(upstream); up != "" && up != "off" {
		goproxy += "," + up
	}
	env := withEnv(os.Environ(),
		"GOWORK=off",
		"GOTOOLCHAIN=local",
		"GOFLAGS=-modcacherw -trimpath",
		"GOMODCACHE="+filepath.Join(c.tmp, "modcache"),
		"GOPROXY="+goproxy,
		"GONOSUMDB="+c.rootPath, // not in the checksum database until published
		"GOPRIVATE=",
		"GONOPROXY=",
	)

	var get []string
	for _, m := range c.mods {
		if m.Dir != "." {
			get = append(get, m.Path+"@"+c.version)
		}
	}
	step := func(what string, args ...string) error {
		start := time.Now()
		if _, err := goCmd(ctx, dir, env, args...); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		c.log("consumer: %s (%.1fs)", what, time.Since(start).Seconds())
		return nil
	}
	if err := step("go get "+strings.Join(get, " "), append([]string{"get"}, get...)...); err != nil {
		return err
	}
	if err := c.checkSelected(ctx, dir, env, "after go get"); err != nil {
		return err
	}
	if err := step("go mod tidy", "mod", "tidy"); err != nil {
		return err
	}
	if err := c.checkSelected(ctx, dir, env, "after go mod tidy"); err != nil {
		return err
	}
	if err := step(fmt.Sprintf("go build of a program importing %d public packages", len(c.pkgs)), "build", "-o", filepath.Join(c.tmp, "consumer.bin"), "."); err != nil {
		return err
	}
	return step("go vet of the program and every public package", append([]string{"vet", "."}, c.pkgs...)...)
}

// checkSelected fails unless every released module is in the consumer's
// build list at the declared version.
func (c *consumer) checkSelected(ctx context.Context, dir string, env []string, when string) error {
	args := []string{"list", "-m", "-f", "{{.Path}} {{.Version}}"}
	for _, m := range c.mods {
		args = append(args, m.Path)
	}
	out, err := goCmd(ctx, dir, env, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", when, err)
	}
	var errs []error
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		p, v, _ := strings.Cut(line, " ")
		got[p] = v
	}
	for _, m := range c.mods {
		if v := got[m.Path]; v != c.version {
			errs = append(errs, fmt.Errorf("%s: the consumer selects %s %q, want %s", when, m.Path, v, c.version))
		}
	}
	return errors.Join(errs...)
}

// seedSum joins the go.sum files of the released modules.
func (c *consumer) seedSum() ([]byte, error) {
	var lines []string
	for _, m := range c.mods {
		data, err := os.ReadFile(filepath.Join(c.root, filepath.FromSlash(m.Dir), "go.sum"))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, l := range strings.Split(string(data), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				lines = append(lines, l)
			}
		}
	}
	slices.Sort(lines)
	lines = slices.Compact(lines)
	if len(lines) == 0 {
		return nil, nil
	}
	return []byte(strings.Join(lines, "\n") + "\n"), nil
}
