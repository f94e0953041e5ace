package reqinfo

import "github.com/gin-gonic/gin"

// PathSet is a set of URL paths and route templates ("/metrics",
// "/debug/pprof/*any") whose requests a middleware passes over: the one
// implementation of the kit's WithSkipPaths options and of setup's exempt
// paths. The zero value matches nothing. A PathSet is a value: [PathSet.Add]
// returns a new one, so a set in use never changes and is safe for
// concurrent use.
type PathSet struct {
	paths map[string]struct{}
}

// NewPathSet returns the set of paths.
func NewPathSet(paths ...string) PathSet { return PathSet{}.Add(paths...) }

// Add returns the set of s's paths and paths; s is unchanged.
func (s PathSet) Add(paths ...string) PathSet {
	if len(paths) == 0 {
		return s
	}
	m := make(map[string]struct{}, len(s.paths)+len(paths))
	for p := range s.paths {
		m[p] = struct{}{}
	}
	for _, p := range paths {
		m[p] = struct{}{}
	}
	return PathSet{paths: m}
}

// Match reports whether the request's URL path, or the route template it
// matched (c.FullPath()), is in s.
func (s PathSet) Match(c *gin.Context) bool {
	if len(s.paths) == 0 {
		return false
	}
	if _, ok := s.paths[c.Request.URL.Path]; ok {
		return true
	}
	if r := c.FullPath(); r != "" {
		_, ok := s.paths[r]
		return ok
	}
	return false
}
