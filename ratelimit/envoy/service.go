package envoy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	commonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/gingov/gingov/logging"
	"github.com/gingov/gingov/ratelimit"
)

// Option configures New.
type Option interface{ applyService(*serviceConfig) }

type serviceOption func(*serviceConfig)

func (f serviceOption) applyService(c *serviceConfig) { f(c) }

type serviceConfig struct {
	logger        *slog.Logger
	onDecision    func(context.Context, ratelimit.Event)
	nilOnDecision bool
	limiter       []ratelimit.RedisOption
}

func newServiceConfig(opts []Option) (serviceConfig, error) {
	var cfg serviceConfig
	for i, o := range opts {
		if o == nil {
			return cfg, fmt.Errorf("envoy: option %d is nil", i+1)
		}
		if f, ok := o.(serviceOption); ok && f == nil {
			return cfg, fmt.Errorf("envoy: option %d is nil", i+1)
		}
		o.applyService(&cfg)
	}
	if cfg.nilOnDecision {
		return cfg, errors.New("envoy: WithOnDecision: nil function")
	}
	for i, o := range cfg.limiter {
		if o == nil {
			return cfg, fmt.Errorf("envoy: WithLimiterOptions: option %d is nil", i+1)
		}
	}
	cfg.logger = logging.OrDefault(cfg.logger)
	return cfg, nil
}

// WithLogger logs configuration loads and rejections and the limiters'
// Redis outages (default, and for nil, the kit's JSON logger,
// logging.Default()).
func WithLogger(l *slog.Logger) Option {
	return serviceOption(func(c *serviceConfig) { c.logger = l })
}

// WithOnDecision calls fn after every decision on a descriptor that a
// configured limit matched, with a ratelimit.EventDecision event (Rule: the
// limit's name) and the gRPC call's context, as ratelimit.WithOnDecision
// does for a Guard: metrics.Governance.OnDecision counts service decisions
// in gingov_ratelimit_decisions_total. fn runs on the call's goroutine and
// must not block. A nil fn is an error. Default: no hook.
func WithOnDecision(fn func(ctx context.Context, e ratelimit.Event)) Option {
	return serviceOption(func(c *serviceConfig) { c.onDecision, c.nilOnDecision = fn, fn == nil })
}

// WithLimiterOptions passes opts to ratelimit.NewRedis for every limit:
// ratelimit.WithFailurePolicy (default FailLocal(1)), ratelimit.WithDeadline
// (default ratelimit.DefaultDeadline; keep it below Envoy's rate-limit
// timeout, 20 ms by default), ratelimit.WithKeyPrefix (must equal the
// in-app Guard's to share buckets), ratelimit.WithOnHealthChange, ... with
// their in-app meaning. Later calls add to earlier ones. A nil option is an
// error.
func WithLimiterOptions(opts ...ratelimit.RedisOption) Option {
	return serviceOption(func(c *serviceConfig) { c.limiter = append(c.limiter, opts...) })
}

// Service is an Envoy rate-limit service (envoy.service.ratelimit.v3)
// whose buckets are gingov's Redis GCRA buckets. Build it with New, serve it
// with Register on a grpc.Server, stop it with Close.
type Service struct {
	rlsv3.UnimplementedRateLimitServiceServer

	rdb redis.UniversalClient
	cfg serviceConfig

	mu     sync.Mutex // serialises Load and Close
	closed bool
	state  atomic.Pointer[state]
}

// state is a loaded configuration and its limiters.
type state struct {
	table    *table
	limiters map[string]*ratelimit.Redis // by rule name
	policy   map[string]string           // rule name -> RateLimit-Policy item
}

// New builds a Service for cfg on rdb. Every limit gets a ratelimit.Redis
// limiter named after it (see [RateLimit.Name]); New does not contact
// Redis, so the service can start while Redis is down.
func New(rdb redis.UniversalClient, cfg Config, opts ...Option) (*Service, error) {
	sc, err := newServiceConfig(opts)
	if err != nil {
		return nil, err
	}
	if rdb == nil {
		return nil, errors.New("envoy: nil Redis client")
	}
	s := &Service{rdb: rdb, cfg: sc}
	if err := s.Load(cfg); err != nil {
		return nil, err
	}
	return s, nil
}

// Load replaces the configuration in force with cfg. Limits whose name and
// rate are unchanged keep their limiter (and its health and fallback
// state); the others' limiters are closed. An invalid cfg is an error and
// changes nothing.
func (s *Service) Load(cfg Config) error {
	t, err := compile(cfg)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("envoy: service closed")
	}
	old := s.state.Load()
	st := &state{table: t, limiters: map[string]*ratelimit.Redis{}, policy: map[string]string{}}
	opts := append([]ratelimit.RedisOption{ratelimit.WithLogger(s.cfg.logger), ratelimit.WithCoalescing(false)}, s.cfg.limiter...)
	for name, r := range t.rules {
		if old != nil {
			if l, ok := old.limiters[name]; ok && l.Rate() == r.rate {
				st.limiters[name] = l
				st.policy[name] = old.policy[name]
				continue
			}
		}
		l, err := ratelimit.NewRedis(s.rdb, name, r.rate, opts...)
		if err != nil {
			for n, l := range st.limiters {
				if old == nil || old.limiters[n] != l {
					_ = l.Close()
				}
			}
			return fmt.Errorf("envoy: limit %q: %w", name, err)
		}
		st.limiters[name] = l
		st.policy[name] = policyItem(name, r.rate)
	}
	s.state.Store(st)
	if old != nil {
		for n, l := range old.limiters {
			if st.limiters[n] != l {
				_ = l.Close()
			}
		}
	}
	return nil
}

// LoadDocument parses a YAML document (ParseConfig) and loads it.
func (s *Service) LoadDocument(data []byte) error {
	cfg, err := ParseConfig(data)
	if err != nil {
		return err
	}
	return s.Load(cfg)
}

// Register registers the service on gs.
func (s *Service) Register(gs *grpc.Server) { rlsv3.RegisterRateLimitServiceServer(gs, s) }

// Healthy reports whether every limiter reached Redis at its last try.
func (s *Service) Healthy() bool {
	for _, l := range s.state.Load().limiters {
		if !l.Healthy() {
			return false
		}
	}
	return true
}

// Close closes every limiter; later calls are answered by the failure
// policy. It is safe to call more than once.
func (s *Service) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	for _, l := range s.state.Load().limiters {
		errs = append(errs, l.Close())
	}
	return errors.Join(errs...)
}

// BucketKey is the bucket key of a request descriptor matched by a chain of
// configured descriptors: the values of the entries matched by descriptors
// without a value. One such value is the key as it is (so a chain ending in
// remote_address shares the buckets of ratelimit.PerIP's rule when named
// alike); none is "all" (ratelimit.Global's key); several are quoted with
// strconv.Quote and joined by ",". An in-app rule shares a limit's buckets
// when it has the limit's name and rate and its key function returns
// BucketKey of the same values.
func BucketKey(values ...string) string {
	switch len(values) {
	case 0:
		return "all"
	case 1:
		return values[0]
	}
	q := make([]string, len(values))
	for i, v := range values {
		q[i] = strconv.Quote(v)
	}
	return strings.Join(q, ",")
}

// match finds the limit of a request descriptor: the chain of configured
// descriptors that its entries walk, preferring at each step the descriptor
// with the entry's value over the one for any value. It returns the limit
// (nil: none) and the bucket key.
func (t *table) match(entries []*commonv3.RateLimitDescriptor_Entry) (*rule, string) {
	n := t.root
	var wild []string
	for _, e := range entries {
		if next, ok := n.exact[e.GetKey()+"\x00"+e.GetValue()]; ok {
			n = next
			continue
		}
		next, ok := n.wildcard[e.GetKey()]
		if !ok {
			return nil, ""
		}
		n = next
		wild = append(wild, e.GetValue())
	}
	if n == t.root || n.rule == nil {
		return nil, ""
	}
	return n.rule, BucketKey(wild...)
}

// Header names in response_headers_to_add.
const (
	HeaderRateLimit  = "RateLimit"
	HeaderPolicy     = "RateLimit-Policy"
	HeaderRetryAfter = "Retry-After"
)

// policyItem is the RateLimit-Policy item of a limit, as ratelimit.Guard
// writes it with ratelimit.HeadersIETF: "name";q=<burst>;w=<period seconds>.
func policyItem(name string, r ratelimit.Rate) string {
	return strconv.Quote(name) + ";q=" + strconv.Itoa(r.Limit) + ";w=" +
		strconv.FormatInt(int64(math.Ceil(r.Period.Seconds())), 10)
}

// ShouldRateLimit decides every descriptor of the request. A descriptor
// that no configured limit matches (or a request for another domain) is OK
// with no limit. A matched descriptor takes hits_addend tokens (its own
// hits_addend, else the request's, else 1) from its bucket; a descriptor
// hits_addend of 0 takes none and is OK. The overall code is OVER_LIMIT when
// any descriptor is over its limit, every descriptor being decided (and
// charged when admitted) either way.
//
// response_headers_to_add carries, when any limit matched,
// RateLimit-Policy (every matched limit, as ratelimit.HeadersIETF writes it:
// "name";q=<requests_per_unit>;w=<unit in seconds>) and RateLimit for the
// matched limit with the fewest requests remaining ("name";r=<remaining>;t=<seconds
// until the bucket is full>), plus Retry-After (whole seconds) when over
// the limit. While Redis is unreachable the limiters' failure policy
// decides, within their deadline; a FailClosed denial is OVER_LIMIT too.
func (s *Service) ShouldRateLimit(ctx context.Context, req *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
	st := s.state.Load()
	resp := &rlsv3.RateLimitResponse{OverallCode: rlsv3.RateLimitResponse_OK}
	descs := req.GetDescriptors()
	resp.Statuses = make([]*rlsv3.RateLimitResponse_DescriptorStatus, len(descs))
	reqHits := uint64(req.GetHitsAddend())
	if reqHits == 0 {
		reqHits = 1
	}
	var (
		policies   []string
		best       ratelimit.Decision
		bestName   string
		anyMatched bool
		retry      time.Duration
	)
	for i, d := range descs {
		ds := &rlsv3.RateLimitResponse_DescriptorStatus{Code: rlsv3.RateLimitResponse_OK}
		resp.Statuses[i] = ds
		if req.GetDomain() != st.table.domain {
			continue
		}
		r, key := st.table.match(d.GetEntries())
		if r == nil {
			continue
		}
		ds.CurrentLimit = currentLimit(r)
		hits := reqHits
		if h := d.GetHitsAddend(); h != nil {
			hits = h.GetValue()
		}
		if hits == 0 {
			continue
		}
		n := int(min(hits, uint64(r.rate.Limit+r.rate.Burst+1))) // more than the bucket holds is denied alike
		l := st.limiters[r.name]
		var start time.Time
		if s.cfg.onDecision != nil {
			start = time.Now()
		}
		dec, err := l.AllowN(ctx, key, n)
		if err != nil { // the caller has gone
			return nil, status.FromContextError(err).Err()
		}
		if s.cfg.onDecision != nil {
			s.cfg.onDecision(ctx, ratelimit.Event{Kind: ratelimit.EventDecision, Rule: r.name, Decision: dec, Latency: time.Since(start)})
		}
		ds.LimitRemaining = uint32(max(0, dec.Remaining))
		ds.DurationUntilReset = durationpb.New(dec.ResetAfter)
		if !dec.Allowed {
			ds.Code = rlsv3.RateLimitResponse_OVER_LIMIT
			resp.OverallCode = rlsv3.RateLimitResponse_OVER_LIMIT
			retry = max(retry, dec.RetryAfter)
		}
		if !contains(policies, st.policy[r.name]) {
			policies = append(policies, st.policy[r.name])
		}
		if !anyMatched || dec.Remaining < best.Remaining || (!dec.Allowed && best.Allowed) {
			best, bestName, anyMatched = dec, r.name, true
		}
	}
	if anyMatched {
		resetSecs := int64(math.Ceil(best.ResetAfter.Seconds()))
		resp.ResponseHeadersToAdd = []*corev3.HeaderValue{
			{Key: HeaderPolicy, Value: strings.Join(policies, ", ")},
			{Key: HeaderRateLimit, Value: strconv.Quote(bestName) + ";r=" + strconv.Itoa(best.Remaining) + ";t=" + strconv.FormatInt(resetSecs, 10)},
		}
		if resp.OverallCode == rlsv3.RateLimitResponse_OVER_LIMIT {
			secs := max(1, int64(math.Ceil(retry.Seconds())))
			resp.ResponseHeadersToAdd = append(resp.ResponseHeadersToAdd, &corev3.HeaderValue{Key: HeaderRetryAfter, Value: strconv.FormatInt(secs, 10)})
		}
	}
	return resp, nil
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func currentLimit(r *rule) *rlsv3.RateLimitResponse_RateLimit {
	unit := rlsv3.RateLimitResponse_RateLimit_SECOND
	switch r.unit {
	case time.Minute:
		unit = rlsv3.RateLimitResponse_RateLimit_MINUTE
	case time.Hour:
		unit = rlsv3.RateLimitResponse_RateLimit_HOUR
	case 24 * time.Hour:
		unit = rlsv3.RateLimitResponse_RateLimit_DAY
	}
	return &rlsv3.RateLimitResponse_RateLimit{Name: r.name, RequestsPerUnit: uint32(min(r.rate.Limit, math.MaxUint32)), Unit: unit}
}
