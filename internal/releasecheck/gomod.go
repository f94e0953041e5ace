package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
)

// gomod is one module of the repository.
type gomod struct {
	Dir      string // slash-separated, relative to the repository root; "." for the root
	Path     string // module path from its go.mod
	Data     []byte // go.mod as committed
	File     *modfile.File
	Released bool
	Order    int // position in the tag order (released modules only)
}

// findGoMods returns the directory of every go.mod under root, skipping
// what the go command skips (directories named testdata or starting with
// "." or "_"; the README test's scratch directories start with "_").
func findGoMods(root string) ([]string, error) {
	var dirs []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() && p != root && (name == "testdata" || name == "vendor" || name == "node_modules" ||
			strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
			return filepath.SkipDir
		}
		if !d.IsDir() && name == "go.mod" {
			rel, err := filepath.Rel(root, filepath.Dir(p))
			if err != nil {
				return err
			}
			dirs = append(dirs, filepath.ToSlash(rel))
		}
		return nil
	})
	slices.Sort(dirs)
	return dirs, err
}

// loadModules reads every go.mod of the repository and matches them with
// the versions file: each go.mod must be listed, each listed module exist.
func loadModules(root string, v *versions) ([]*gomod, error) {
	dirs, err := findGoMods(root)
	if err != nil {
		return nil, err
	}
	listed := map[string]*gomod{}
	for i, d := range v.Released {
		listed[d] = &gomod{Dir: d, Released: true, Order: i}
	}
	for _, d := range v.Unreleased {
		listed[d] = &gomod{Dir: d}
	}
	var errs []error
	var mods []*gomod
	for _, d := range dirs {
		m := listed[d]
		if m == nil {
			errs = append(errs, fmt.Errorf("%s/go.mod: module not listed in versions (add \"module %s\" in tag order, or \"unreleased %s\")", d, d, d))
			continue
		}
		delete(listed, d)
		file := filepath.Join(root, filepath.FromSlash(d), "go.mod")
		m.Data, err = os.ReadFile(file)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m.File, err = modfile.Parse(file, m.Data, nil)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if m.File.Module == nil {
			errs = append(errs, fmt.Errorf("%s/go.mod: no module line", d))
			continue
		}
		m.Path = m.File.Module.Mod.Path
		mods = append(mods, m)
	}
	for d := range listed {
		errs = append(errs, fmt.Errorf("versions: %s is listed but %s/go.mod does not exist", d, d))
	}
	return mods, errors.Join(errs...)
}

// isZeroPseudo reports whether v is v0.0.0 or a pseudo-version at the zero
// time (v0.0.0-00010101000000-000000000000): what the go command writes for
// a replaced module that has no version, and a version no proxy will serve.
func isZeroPseudo(v string) bool {
	if v == "v0.0.0" {
		return true
	}
	if !module.IsPseudoVersion(v) {
		return false
	}
	t, err := module.PseudoVersionTime(v)
	return err == nil && t.Year() == 1
}

// checkModules checks every module's requirements on the kit's own modules:
// each at the declared version (never v0.0.0 or a zero pseudo-version), on
// a released module tagged before the requiring one, with a replace line to
// the module's directory for development.
func checkModules(mods []*gomod, v *versions) error {
	var root *gomod
	byPath := map[string]*gomod{}
	for _, m := range mods {
		if m.Dir == "." {
			root = m
		}
		byPath[m.Path] = m
	}
	if root == nil {
		return errors.New("versions: the root go.mod is missing")
	}
	kit := func(p string) bool { return p == root.Path || strings.HasPrefix(p, root.Path+"/") }
	var errs []error
	for _, m := range mods {
		if want := path.Join(root.Path, m.Dir); m.Path != want {
			errs = append(errs, fmt.Errorf("%s/go.mod: module %s, want %s (a nested module's path is the root's plus its directory, or its tag cannot resolve)", m.Dir, m.Path, want))
		}
		for _, r := range m.File.Require {
			p, ver := r.Mod.Path, r.Mod.Version
			if !kit(p) {
				continue
			}
			where := fmt.Sprintf("%s/go.mod:%d: require %s %s", m.Dir, r.Syntax.Start.Line, p, ver)
			target := byPath[p]
			switch {
			case isZeroPseudo(ver):
				errs = append(errs, fmt.Errorf("%s: a version that will never exist; the kit's version is %s (scripts/set-version.sh %s)", where, v.Version, v.Version))
			case ver != v.Version:
				errs = append(errs, fmt.Errorf("%s: not the kit's version %s (scripts/set-version.sh %s)", where, v.Version, v.Version))
			}
			if target == nil {
				errs = append(errs, fmt.Errorf("%s: no module of this repository has that path", where))
				continue
			}
			if !target.Released {
				errs = append(errs, fmt.Errorf("%s: that module is never released", where))
			} else if m.Released && target.Order >= m.Order {
				errs = append(errs, fmt.Errorf("%s: %s must be tagged before %s; list it earlier in versions", where, target.Dir, m.Dir))
			}
			if err := checkReplace(m, target); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", where, err))
			}
		}
	}
	return errors.Join(errs...)
}

// checkReplace requires m's go.mod to replace target by its directory in
// this tree, so that development builds never fetch a published version.
func checkReplace(m, target *gomod) error {
	for _, r := range m.File.Replace {
		if r.Old.Path != target.Path {
			continue
		}
		if r.New.Version != "" {
			return fmt.Errorf("replaced by %s %s, want the directory %s", r.New.Path, r.New.Version, target.Dir)
		}
		if got := path.Join(m.Dir, filepath.ToSlash(r.New.Path)); got != target.Dir {
			return fmt.Errorf("replaced by %s (%s), want the directory %s", r.New.Path, got, target.Dir)
		}
		return nil
	}
	rel, err := filepath.Rel(filepath.FromSlash(m.Dir), filepath.FromSlash(target.Dir))
	if err != nil {
		return err
	}
	return fmt.Errorf("no replace line: add \"replace %s => %s\" (development builds the tree)", target.Path, filepath.ToSlash(rel))
}

// setRequirements rewrites every requirement of m on the kit's modules to
// version v and returns the new go.mod text (nil when nothing changes).
func setRequirements(m *gomod, rootPath, v string) ([]byte, error) {
	changed := false
	for _, r := range slices.Clone(m.File.Require) {
		p := r.Mod.Path
		if (p == rootPath || strings.HasPrefix(p, rootPath+"/")) && r.Mod.Version != v {
			if err := m.File.AddRequire(p, v); err != nil {
				return nil, err
			}
			changed = true
		}
	}
	if !changed {
		return nil, nil
	}
	m.File.Cleanup()
	out, err := m.File.Format()
	if err != nil {
		return nil, err
	}
	if bytes.Equal(out, m.Data) {
		return nil, nil
	}
	return out, nil
}
