module github.com/gingov/gingov/internal/releasecheck

go 1.26.0

require golang.org/x/mod v0.29.0
