package setup

// gingov.schema.json is the JSON Schema of gingov.yaml, derived from Config
// (see internal/schema); a test fails when it is stale.
//go:generate go run ./internal/schemagen -o gingov.schema.json
