# The two set-up commands of the README:
#   make run    serves the quickstart example on 127.0.0.1:8080 (no external services)
#   make test   installs and starts the real servers the tests use, then tests every module
.PHONY: run test lint generate fmt

run:
	cd examples && GOWORK=off go run ./quickstart

test:
	bash scripts/test.sh

lint:
	bash scripts/lint.sh

generate:
	GOWORK=off go generate ./...

fmt:
	gofmt -w $$(git ls-files '*.go')
