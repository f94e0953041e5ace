package main

import (
	"bufio"
	"bytes"
	"fmt"
	"path"
	"regexp"
	"strings"

	"golang.org/x/mod/semver"
)

// versions is the parsed versions file at the repository root: the one
// version of the kit and the module directories, released ones in tag order.
type versions struct {
	Version    string
	Released   []string // directories, slash-separated, "." for the root, in tag order
	Unreleased []string
}

// parseVersions reads the versions file. Lines are "version vX.Y.Z",
// "module DIR" (released, in tag order) or "unreleased DIR"; # starts a
// comment.
func parseVersions(data []byte) (*versions, error) {
	v := &versions{}
	seen := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 {
			return nil, fmt.Errorf("versions:%d: want \"KEYWORD VALUE\", got %q", n, strings.TrimSpace(line))
		}
		switch f[0] {
		case "version":
			if v.Version != "" {
				return nil, fmt.Errorf("versions:%d: a second version line (the kit has one version)", n)
			}
			if err := checkVersion(f[1]); err != nil {
				return nil, fmt.Errorf("versions:%d: %w", n, err)
			}
			v.Version = f[1]
		case "module", "unreleased":
			dir := f[1]
			if dir != path.Clean(dir) || path.IsAbs(dir) || strings.HasPrefix(dir, "../") || dir == ".." {
				return nil, fmt.Errorf("versions:%d: %q is not a clean relative directory", n, dir)
			}
			if prev, ok := seen[dir]; ok {
				return nil, fmt.Errorf("versions:%d: %s is already listed on line %d", n, dir, prev)
			}
			seen[dir] = n
			if f[0] == "module" {
				v.Released = append(v.Released, dir)
			} else {
				v.Unreleased = append(v.Unreleased, dir)
			}
		default:
			return nil, fmt.Errorf("versions:%d: unknown keyword %q (want version, module or unreleased)", n, f[0])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if v.Version == "" {
		return nil, fmt.Errorf("versions: no \"version vX.Y.Z\" line")
	}
	if len(v.Released) == 0 || v.Released[0] != "." {
		return nil, fmt.Errorf("versions: the first released module must be the root (\"module .\"): it is tagged first")
	}
	return v, nil
}

// checkVersion accepts a canonical semantic version: vX.Y.Z with an
// optional pre-release, no build metadata (tags and go.mod need that form).
func checkVersion(v string) error {
	if !semver.IsValid(v) || semver.Canonical(v) != v || semver.Build(v) != "" {
		return fmt.Errorf("%q is not a version of the form vX.Y.Z or vX.Y.Z-pre", v)
	}
	if semver.Major(v) != "v0" && semver.Major(v) != "v1" {
		return fmt.Errorf("%s: a major version above v1 needs a /vN module path suffix, which this tool does not handle", v)
	}
	return nil
}

var versionLine = regexp.MustCompile(`(?m)^version[ \t]+\S+`)

// setVersionLine rewrites the version line of the versions file's text.
func setVersionLine(data []byte, v string) ([]byte, error) {
	if n := len(versionLine.FindAllIndex(data, -1)); n != 1 {
		return nil, fmt.Errorf("versions: want one version line, found %d", n)
	}
	return versionLine.ReplaceAll(data, []byte("version "+v)), nil
}
