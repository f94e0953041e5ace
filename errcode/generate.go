package errcode

//go:generate go run ./internal/gendoc -o ../docs/errcodes.md
