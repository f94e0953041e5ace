// Command releasecheck proves that the gingov kit can be adopted from
// outside its repository at the one version declared in the versions file,
// and rewrites that version.
//
//	releasecheck [-root DIR] [-timeout D] [-keep] check
//	releasecheck [-root DIR] set-version vX.Y.Z
//
// check (make release-check) fails, with every problem named:
//
//   - when a go.mod of the repository is not listed in versions, or a listed
//     module does not exist;
//   - when a go.mod requires a gingov module at v0.0.0, at a zero
//     pseudo-version or at any version but the declared one, requires an
//     unreleased module or one tagged later, or has no replace line to its
//     directory;
//   - when a fresh module outside the repository, with no replace directive,
//     cannot go get every released module but the root at the declared
//     version (the root must come in through their requirements) and then
//     build and vet a program importing every public package of every
//     released module. The modules come from a file-based module proxy
//     written from the working tree: zips made by golang.org/x/mod/zip
//     (which leaves out nested modules, as a tag would) and each go.mod as
//     committed.
//
// The public packages are found with go list, so new packages are covered.
// Everything happens in a temporary directory, removed at the end.
//
// set-version (scripts/set-version.sh) rewrites the version line of versions
// and every requirement on a gingov module in every go.mod.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	log := func(format string, args ...any) { fmt.Printf("release-check: "+format+"\n", args...) }
	root := flag.String("root", "", "repository root (default: the nearest parent directory holding a versions file)")
	timeout := flag.Duration("timeout", 20*time.Minute, "give up after this long")
	keep := flag.Bool("keep", false, "keep the temporary directory (printed) for inspection")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: releasecheck [flags] check | set-version vX.Y.Z")
		flag.PrintDefaults()
	}
	flag.Parse()

	dir, err := findRoot(*root)
	if err != nil {
		log("FAILED: %v", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	switch args := flag.Args(); {
	case len(args) == 0 || len(args) == 1 && args[0] == "check":
		err = check(ctx, dir, *keep, log)
	case len(args) == 2 && args[0] == "set-version":
		err = setVersion(dir, args[1], log)
	default:
		flag.Usage()
		os.Exit(2)
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			log("FAILED: not done within -timeout %s", *timeout)
		}
		log("FAILED:\n%v", err)
		cancel()
		stop()
		os.Exit(1)
	}
}

// findRoot returns dir, or the nearest directory from the working directory
// up that holds a versions file and a go.mod.
func findRoot(dir string) (string, error) {
	if dir != "" {
		return filepath.Abs(dir)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if isFile(filepath.Join(d, "versions")) && isFile(filepath.Join(d, "go.mod")) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no versions file in %s or a parent: give -root", wd)
		}
	}
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// load reads the versions file and every go.mod of the repository.
func load(root string) (*versions, []*gomod, error) {
	data, err := os.ReadFile(filepath.Join(root, "versions"))
	if err != nil {
		return nil, nil, err
	}
	v, err := parseVersions(data)
	if err != nil {
		return nil, nil, err
	}
	mods, err := loadModules(root, v)
	return v, mods, err
}

func check(ctx context.Context, root string, keep bool, log func(string, ...any)) error {
	start := time.Now()
	v, mods, err := load(root)
	if err != nil {
		return err
	}
	if err := checkModules(mods, v); err != nil {
		return err
	}
	var released []*gomod
	rootPath := ""
	for _, d := range v.Released {
		for _, m := range mods {
			if m.Dir == d {
				released = append(released, m)
			}
			if m.Dir == "." {
				rootPath = m.Path
			}
		}
	}
	log("%s: %d go.mod files, requirements on gingov modules at %s with replace lines; released in tag order: %s",
		v.Version, len(mods), v.Version, tagList(released, v.Version))

	tmp, err := os.MkdirTemp("", "gingov-release-check-")
	if err != nil {
		return err
	}
	if keep {
		log("keeping %s", tmp)
	} else {
		defer removeAll(tmp)
	}

	// A released go.mod that go mod tidy would change can miss a
	// requirement that consumers then lack; the packages a consumer may
	// import are found with go list.
	owner := func(p string) string { // the module of this tree that holds p
		best := ""
		for _, m := range mods {
			if (p == m.Path || strings.HasPrefix(p, m.Path+"/")) && len(m.Path) > len(best) {
				best = m.Path
			}
		}
		return best
	}
	t := time.Now()
	devEnv := withEnv(os.Environ(), "GOWORK=off")
	var pkgs []string
	var problems []error
	for _, m := range released {
		dir := filepath.Join(root, filepath.FromSlash(m.Dir))
		if _, err := goCmd(ctx, dir, devEnv, "mod", "tidy", "-diff"); err != nil {
			problems = append(problems, fmt.Errorf("%s: go.mod or go.sum is not tidy (run go mod tidy there): %w", m.Dir, err))
			continue
		}
		p, err := publicPackages(ctx, root, m, devEnv, owner)
		if err != nil {
			problems = append(problems, err)
		}
		pkgs = append(pkgs, p...)
	}
	if err := errors.Join(problems...); err != nil {
		return err
	}
	log("released modules tidy, importing no other module's internal package; %d public packages found with go list (%.1fs)", len(pkgs), time.Since(t).Seconds())

	t = time.Now()
	proxyDir := filepath.Join(tmp, "proxy")
	sizes, err := buildProxy(ctx, root, proxyDir, released, v.Version)
	if err != nil {
		return err
	}
	var total int64
	for _, n := range sizes {
		total += n
	}
	log("module proxy of %d modules at %s written, zips %d kB (%.1fs)", len(sizes), v.Version, total/1024, time.Since(t).Seconds())

	c := &consumer{root: root, tmp: tmp, version: v.Version, rootPath: rootPath, mods: released, pkgs: pkgs, log: log}
	if err := c.run(ctx, proxyDir); err != nil {
		return err
	}
	log("OK: a module outside the repository, with no replace directive, builds and vets %d public packages of %d modules at %s (%.1fs)",
		len(pkgs), len(released), v.Version, time.Since(start).Seconds())
	return nil
}

func tagList(mods []*gomod, version string) string {
	s := ""
	for i, m := range mods {
		if i > 0 {
			s += ", "
		}
		if m.Dir == "." {
			s += version
		} else {
			s += m.Dir + "/" + version
		}
	}
	return s
}

// removeAll removes dir, making read-only directories (module caches)
// writable first.
func removeAll(dir string) {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o755)
		}
		return nil
	})
	_ = os.RemoveAll(dir)
}

func setVersion(root, version string, log func(string, ...any)) error {
	if err := checkVersion(version); err != nil {
		return err
	}
	v, mods, err := load(root)
	if err != nil {
		return err
	}
	rootPath := ""
	for _, m := range mods {
		if m.Dir == "." {
			rootPath = m.Path
		}
	}
	for _, m := range mods {
		out, err := setRequirements(m, rootPath, version)
		if err != nil {
			return fmt.Errorf("%s/go.mod: %w", m.Dir, err)
		}
		if out == nil {
			continue
		}
		if err := os.WriteFile(filepath.Join(root, filepath.FromSlash(m.Dir), "go.mod"), out, 0o644); err != nil {
			return err
		}
		log("%s/go.mod: gingov requirements at %s", m.Dir, version)
	}
	vf := filepath.Join(root, "versions")
	data, err := os.ReadFile(vf)
	if err != nil {
		return err
	}
	out, err := setVersionLine(data, version)
	if err != nil {
		return err
	}
	if err := os.WriteFile(vf, out, 0o644); err != nil {
		return err
	}
	if v.Version != version {
		log("versions: %s (was %s)", version, v.Version)
	}
	log("the kit's version is %s; now run make release-check", version)
	return nil
}
