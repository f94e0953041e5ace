package otlphttp

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/gingov/gingov/internal/backoff"
)

// client is the otlptrace.Client posting ExportTraceServiceRequests.
type client struct {
	url     string
	headers map[string]string
	hc      *http.Client

	mu      sync.Mutex
	stopped bool
	stop    context.CancelFunc // cancels the uploads in flight
	stopCtx context.Context
}

func newClient(url string, headers map[string]string) *client {
	ctx, cancel := context.WithCancel(context.Background())
	return &client{
		url:     url,
		headers: headers,
		hc:      &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()},
		stop:    cancel,
		stopCtx: ctx,
	}
}

func (c *client) Start(context.Context) error { return nil }

// Stop cancels the uploads in flight and closes idle connections.
func (c *client) Stop(context.Context) error {
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	c.stop()
	c.hc.CloseIdleConnections()
	return nil
}

// retryBackoff spaces attempts the collector did not time itself (no
// Retry-After): from 200 ms doubling to 5 s, each wait drawn from the upper
// half of its base (jitter, so that instances do not retry in step).
var retryBackoff = backoff.Backoff{Min: 200 * time.Millisecond, Max: 5 * time.Second}

func (c *client) UploadTraces(ctx context.Context, spans []*tracepb.ResourceSpans) error {
	c.mu.Lock()
	stopped := c.stopped
	c.mu.Unlock()
	if stopped {
		return errStopped
	}
	body, err := encodeRequest(spans)
	if err != nil {
		return fmt.Errorf("otlphttp: encode: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
	defer cancel()
	stop := context.AfterFunc(c.stopCtx, cancel)
	defer stop()
	for attempt := 0; ; attempt++ {
		wait, err := c.post(ctx, body)
		if err == nil || wait < 0 {
			return err
		}
		if wait == 0 {
			wait = retryBackoff.Delay(attempt)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last attempt: %w)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// post sends one attempt. wait < 0: done (err is final); otherwise err is
// retryable after wait (0: the caller's back-off).
func (c *client) post(ctx context.Context, body []byte) (wait time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return -1, fmt.Errorf("otlphttp: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	for k, v := range c.headers {
		req.Header.Set(k, v)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return -1, fmt.Errorf("otlphttp: export: %w", err)
		}
		return 0, fmt.Errorf("otlphttp: export: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 256<<10)) // reuse the connection
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		if rejected, text := partialSuccess(msg); rejected > 0 || text != "" {
			otel.Handle(fmt.Errorf("otlphttp: collector rejected %d spans: %s", rejected, text))
		}
		return -1, nil
	case resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode == http.StatusBadGateway,
		resp.StatusCode == http.StatusServiceUnavailable, resp.StatusCode == http.StatusGatewayTimeout:
		err := fmt.Errorf("otlphttp: export: collector answered %s", resp.Status)
		if s, convErr := strconv.Atoi(resp.Header.Get("Retry-After")); convErr == nil && s >= 0 {
			return max(time.Duration(s)*time.Second, time.Millisecond), err
		}
		return 0, err
	}
	return -1, fmt.Errorf("otlphttp: export: collector answered %s", resp.Status)
}

// encodeRequest is ExportTraceServiceRequest{resource_spans = 1} in
// protobuf: each ResourceSpans as a length-delimited field 1.
func encodeRequest(spans []*tracepb.ResourceSpans) ([]byte, error) {
	var b []byte
	for _, rs := range spans {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(proto.Size(rs)))
		var err error
		if b, err = (proto.MarshalOptions{UseCachedSize: true}).MarshalAppend(b, rs); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// partialSuccess reads ExportTraceServiceResponse.partial_success (field
// 1: rejected_spans = 1, error_message = 2) from a protobuf answer; an
// answer that is not one reads as full success.
func partialSuccess(b []byte) (rejected int64, text string) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, ""
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			ps, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return 0, ""
			}
			b = b[n:]
			for len(ps) > 0 {
				num, typ, n := protowire.ConsumeTag(ps)
				if n < 0 {
					return 0, ""
				}
				ps = ps[n:]
				switch {
				case num == 1 && typ == protowire.VarintType:
					v, n := protowire.ConsumeVarint(ps)
					if n < 0 {
						return 0, ""
					}
					rejected, ps = int64(v), ps[n:]
				case num == 2 && typ == protowire.BytesType:
					v, n := protowire.ConsumeBytes(ps)
					if n < 0 {
						return 0, ""
					}
					text, ps = string(v), ps[n:]
				default:
					n := protowire.ConsumeFieldValue(num, typ, ps)
					if n < 0 {
						return 0, ""
					}
					ps = ps[n:]
				}
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return 0, ""
		}
		b = b[n:]
	}
	return rejected, text
}
