// Package protoconflict lets Kratos v2 and v3 live in one binary.
//
// Both register the protobuf file "errors/errors.proto" (message
// kratos.errors.Error) in the global registry, and the protobuf runtime
// panics on the second registration unless GOLANG_PROTOBUF_REGISTRATION_CONFLICT
// says otherwise. It reads that variable when the conflict happens, in the
// init of github.com/go-kratos/kratos/v3/errors; this package's init sets
// it first: since Go 1.21 packages are initialised in import-path order
// among those whose imports are ready, and this one imports only os and
// sorts before github.com/go-kratos. The second registration is then
// skipped; neither side looks the message up by name on the paths measured.
//
// Import it for its effect, from every package that links both versions:
//
//	import _ "github.com/gingov/gingov/benchmarks/internal/protoconflict"
package protoconflict

import "os"

// Env is the variable the protobuf runtime reads.
const Env = "GOLANG_PROTOBUF_REGISTRATION_CONFLICT"

func init() {
	if os.Getenv(Env) == "" {
		_ = os.Setenv(Env, "ignore")
	}
}
