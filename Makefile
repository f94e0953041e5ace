# The two set-up commands of the README:
#   make run    serves the quickstart example on 127.0.0.1:8080 (no external services)
#   make test   installs and starts the real servers the tests use, then tests every module
# make bench runs the side-by-side benchmarks (about 27 minutes on 2 cores; see scripts/bench.sh)
# make chaos runs the chaos suite: example fleets under injected faults (docs/reliability.md)
# make generate regenerates what is derived from the code, in every module
#   (docs/errcodes.md, setup/gingov.schema.json); tests fail when it is stale
# make release-check proves a module outside this repository can adopt the kit
# at the version declared in versions (docs/releasing.md)
.PHONY: run test lint generate fmt bench release-check chaos

run:
	cd examples && GOWORK=off go run ./quickstart

test:
	bash scripts/test.sh

bench:
	bash scripts/bench.sh

chaos:
	bash scripts/chaos.sh

lint:
	bash scripts/lint.sh

release-check:
	cd internal/releasecheck && GOWORK=off go run . -root ../.. check

generate:
	bash scripts/generate.sh

fmt:
	gofmt -w $$(git ls-files '*.go')
