// Command schemagen writes the JSON Schema of gingov.yaml (package
// internal/schema) to a file. setup's go:generate runs it:
//
//	cd setup && go generate .   (or make generate at the repository root)
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/gingov/gingov/setup/internal/schema"
)

func main() {
	out := flag.String("o", "gingov.schema.json", "output file")
	flag.Parse()
	data, err := schema.Generate(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, data, 0o644); err != nil { //nolint:gosec // a file of the repository, world-readable
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
