// Package envoy serves gingov's Redis rate limiter to Envoy as a rate-limit
// service (envoy.service.ratelimit.v3 ShouldRateLimit), so that limits
// enforced by Envoy's rate-limit filter and limits enforced in the app by
// ratelimit.Guard can share one budget during a move into a service mesh.
//
// Configuration is the YAML of envoyproxy/ratelimit (domain, nested
// descriptors with key, value and rate_limit{unit, requests_per_unit}),
// plus gingov's rate_limit.burst and rate_limit.name; see [Config].
// [ParseConfig] validates it with field-named errors;
// [Service.WatchFile] and [Service.WatchNacos] reload it from a file or
// the Nacos config center, keeping the configuration in force when a new
// document is invalid (logged once at ERROR per distinct document).
//
// # Buckets
//
// Every limit is a ratelimit.NewRedis limiter named after the limit
// ([RateLimit.Name], default [DefaultName]): its Redis keys and scripts are
// those of an in-app ratelimit.Guard rule of the same name, rate and key
// prefix. The key of a request descriptor is [BucketKey] of the values of
// the entries matched by descriptors without a value: a descriptor
// remote_address named "ip" is the bucket of ratelimit.PerIP's rule "ip"
// for the same client address; a chain of fixed values only is "all",
// ratelimit.Global's key. The buckets are GCRA: no window boundary lets
// twice the limit through, and denied requests take nothing.
//
// # Matching
//
// A request descriptor's entries walk the configured tree from the top:
// at each level the descriptor with the entry's key and value wins over
// the one with the key and no value. The limit of the descriptor where the
// walk ends applies; a walk that stops early, a descriptor without a limit
// and another domain are OK with no limit. The request's descriptor limit
// overrides (RateLimitDescriptor.limit) are ignored.
//
// # Failure
//
// While Redis is unreachable each limiter answers by its failure policy
// (ratelimit.WithFailurePolicy, through [WithLimiterOptions]) within its
// deadline (ratelimit.WithDeadline): keep the deadline below Envoy's
// rate-limit timeout (20 ms by default), or Envoy applies its own
// failure_mode_deny first.
package envoy
