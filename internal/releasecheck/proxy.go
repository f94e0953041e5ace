package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/zip"
)

// buildProxy writes a file-based module proxy (GOPROXY=file://dir) holding
// every released module at version: list, .info, .mod (the go.mod as
// committed, replace lines and all: consumers ignore them) and .zip. It
// returns the size of each zip by module directory.
func buildProxy(ctx context.Context, root, dir string, mods []*gomod, version string) (map[string]int64, error) {
	sizes := map[string]int64{}
	info, err := json.Marshal(struct {
		Version string
		Time    time.Time
	}{version, time.Now().UTC().Truncate(time.Second)})
	if err != nil {
		return nil, err
	}
	for _, m := range mods {
		if !m.Released {
			continue
		}
		esc, err := module.EscapePath(m.Path)
		if err != nil {
			return nil, err
		}
		vdir := filepath.Join(dir, filepath.FromSlash(esc), "@v")
		if err := os.MkdirAll(vdir, 0o755); err != nil {
			return nil, err
		}
		for name, data := range map[string][]byte{
			"list":            []byte(version + "\n"),
			version + ".info": info,
			version + ".mod":  m.Data,
		} {
			if err := os.WriteFile(filepath.Join(vdir, name), data, 0o644); err != nil {
				return nil, err
			}
		}
		zf := filepath.Join(vdir, version+".zip")
		n, err := writeZip(ctx, root, m, version, zf)
		if err != nil {
			return nil, fmt.Errorf("zip %s@%s: %w", m.Path, version, err)
		}
		sizes[m.Dir] = n
	}
	return sizes, nil
}

// writeZip writes the module zip of m as a tag of the working tree would
// give it: the files git tracks or would track (ignored files such as
// built binaries are left out, as from a tag), without the nested modules,
// which zip.Create leaves out itself. Without git it zips the directory.
func writeZip(ctx context.Context, root string, m *gomod, version, file string) (int64, error) {
	out, err := os.Create(file)
	if err != nil {
		return 0, err
	}
	defer out.Close()
	mv := module.Version{Path: m.Path, Version: version}
	dir := filepath.Join(root, filepath.FromSlash(m.Dir))
	files, gitErr := gitFiles(ctx, root, m.Dir)
	if gitErr != nil {
		err = zip.CreateFromDir(out, mv, dir)
	} else {
		err = zip.Create(out, mv, files)
	}
	if err != nil {
		return 0, err
	}
	fi, err := out.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), out.Close()
}

// diskFile is a file of the working tree for zip.Create.
type diskFile struct {
	rel string // slash-separated, relative to the module root
	abs string
	fi  os.FileInfo
}

func (f diskFile) Path() string                 { return f.rel }
func (f diskFile) Lstat() (os.FileInfo, error)  { return f.fi, nil }
func (f diskFile) Open() (io.ReadCloser, error) { return os.Open(f.abs) }

// gitFiles lists the files of dir (relative to root) that git tracks or
// would track, as they are in the working tree; deleted files are skipped.
func gitFiles(ctx context.Context, root, dir string) ([]zip.File, error) {
	cmd := exec.CommandContext(ctx, "git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("git ls-files: %w: %s", err, stderr.Bytes())
	}
	prefix := ""
	if dir != "." {
		prefix = dir + "/"
	}
	seen := map[string]bool{}
	var files []zip.File
	for _, p := range strings.Split(string(out), "\x00") {
		if p == "" || seen[p] || !strings.HasPrefix(p, prefix) {
			continue
		}
		seen[p] = true
		abs := filepath.Join(root, filepath.FromSlash(p))
		fi, err := os.Lstat(abs)
		if err != nil {
			continue // deleted in the working tree
		}
		files = append(files, diskFile{rel: strings.TrimPrefix(p, prefix), abs: abs, fi: fi})
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("git ls-files lists no file in %s", dir)
	}
	return files, nil
}
