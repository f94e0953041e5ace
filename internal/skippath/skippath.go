// Package skippath is the one implementation of the kit's WithSkipPaths
// options: a set of URL paths and route templates whose requests a
// middleware passes over (health checks, /metrics).
package skippath

import "github.com/gin-gonic/gin"

// Set is a set of paths and route templates. The zero value skips nothing.
// It is written while options are applied and read-only afterwards.
type Set map[string]struct{}

// Add adds paths to s, allocating it when needed, and returns it.
func (s Set) Add(paths ...string) Set {
	if s == nil && len(paths) > 0 {
		s = make(Set, len(paths))
	}
	for _, p := range paths {
		s[p] = struct{}{}
	}
	return s
}

// Skip reports whether the request's URL path or route template is in s.
func (s Set) Skip(c *gin.Context) bool {
	if len(s) == 0 {
		return false
	}
	if _, ok := s[c.Request.URL.Path]; ok {
		return true
	}
	if r := c.FullPath(); r != "" {
		_, ok := s[r]
		return ok
	}
	return false
}
