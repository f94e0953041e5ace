// Command gendoc writes the kit's error-code table (run by go generate ./errcode).
package main

import (
	"flag"
	"log"
	"os"

	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/errcode/internal/codetable"
)

func main() {
	out := flag.String("o", "", "output file")
	flag.Parse()
	if *out == "" {
		log.Fatal("gendoc: -o is required")
	}
	if err := os.WriteFile(*out, []byte(codetable.Markdown(errcode.Kit())), 0o644); err != nil {
		log.Fatal(err)
	}
}
