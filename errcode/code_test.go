package errcode_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gingov/gingov/errcode"
)

func TestComposeSplitRoundTrip(t *testing.T) {
	t.Parallel()
	tiers := [][3]int{
		{0, 0, 1},
		{0, 404, 1},
		{1, 0, 1},
		{5, 1, 3},
		{12, 34, 56},
		{999, 999, 999},
		{errcode.MaxService, 0, errcode.MaxError},
		{1, errcode.MaxModule, 1},
	}
	for _, tc := range tiers {
		code, err := errcode.Compose(tc[0], tc[1], tc[2])
		if err != nil {
			t.Fatalf("Compose(%d, %d, %d): %v", tc[0], tc[1], tc[2], err)
		}
		if want := tc[0]*1_000_000 + tc[1]*1_000 + tc[2]; code != want {
			t.Errorf("Compose(%d, %d, %d) = %d, want %d", tc[0], tc[1], tc[2], code, want)
		}
		s, m, e := errcode.Split(code)
		if s != tc[0] || m != tc[1] || e != tc[2] {
			t.Errorf("Split(%d) = %d, %d, %d, want %d, %d, %d", code, s, m, e, tc[0], tc[1], tc[2])
		}
	}
}

func TestComposeExample(t *testing.T) {
	t.Parallel()
	code, err := errcode.Compose(5, 1, 3)
	if err != nil || code != 5001003 {
		t.Fatalf("Compose(5, 1, 3) = %d, %v; want 5001003, nil", code, err)
	}
	if s, m, e := errcode.Split(5001003); s != 5 || m != 1 || e != 3 {
		t.Fatalf("Split(5001003) = %d, %d, %d; want 5, 1, 3", s, m, e)
	}
}

func TestComposeRange(t *testing.T) {
	t.Parallel()
	tests := []struct {
		service, module, errNum int
		want                    string
	}{
		{-1, 1, 1, "service -1"},
		{1000, 1, 1, "service 1000"},
		{1, -1, 1, "module -1"},
		{1, 1000, 1, "module 1000"},
		{1, 1, 0, "error number 0"},
		{1, 1, -1, "error number -1"},
		{1, 1, 1000, "error number 1000"},
	}
	for _, tc := range tests {
		code, err := errcode.Compose(tc.service, tc.module, tc.errNum)
		if err == nil {
			t.Errorf("Compose(%d, %d, %d) = %d, nil; want an error", tc.service, tc.module, tc.errNum, code)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "errcode: ") || !strings.Contains(msg, tc.want) || !strings.Contains(msg, "out of range") {
			t.Errorf("Compose(%d, %d, %d) error = %q; want it prefixed \"errcode: \" and to mention %q out of range",
				tc.service, tc.module, tc.errNum, msg, tc.want)
		}
	}
}

func TestRegistryNewValid(t *testing.T) {
	t.Parallel()
	r := errcode.NewRegistry()
	c, err := r.New(8001003, http.StatusNotFound, "ORDER_NOT_FOUND", "order not found", errcode.WithSolution("check the order id"))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if c.Code() != 8001003 || c.Status() != 404 || c.Reason() != "ORDER_NOT_FOUND" ||
		c.Message() != "order not found" || c.Solution() != "check the order id" {
		t.Errorf("declared code = %d %d %s %q %q", c.Code(), c.Status(), c.Reason(), c.Message(), c.Solution())
	}
	got, ok := r.Lookup(8001003)
	if !ok || got != c {
		t.Errorf("Lookup(8001003) = %v, %v; want the declared code", got, ok)
	}
	if _, ok := errcode.Lookup(8001003); ok {
		t.Error("a code declared in a private registry leaked into the default registry")
	}
	if e := c.Error(); !strings.Contains(e, "8001003") || !strings.Contains(e, "ORDER_NOT_FOUND") || !strings.Contains(e, "order not found") {
		t.Errorf("Error() = %q; want code, reason and message", e)
	}

	// Boundaries of the scheme and of the status range are accepted.
	for _, tc := range []struct {
		code, status int
		reason       string
	}{
		{1_000_001, 400, "FIRST"},
		{999_999_999, 599, "LAST"},
		{2_000_001, 499, "A1_B2_3"},
		{3_000_001, 500, strings.Repeat("A", errcode.MaxReasonLen)},
	} {
		if _, err := r.New(tc.code, tc.status, tc.reason, "msg"); err != nil {
			t.Errorf("New(%d, %d, %q): %v", tc.code, tc.status, tc.reason, err)
		}
	}
}

func TestRegistryNewInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		code    int
		status  int
		reason  string
		message string
		want    []string // substrings of the error message
	}{
		{"service 0", 1001, 404, "MY_NOT_FOUND", "m", []string{"service 0", "reserved"}},
		{"kit code", 404001, 404, "MY_NOT_FOUND", "m", []string{"404001", "reserved"}},
		{"zero code", 0, 404, "ZERO", "m", []string{"code 0", "outside the scheme"}},
		{"negative code", -5001003, 404, "NEG", "m", []string{"-5001003", "outside the scheme"}},
		{"code too large", 1_000_000_000, 404, "BIG", "m", []string{"1000000000", "outside the scheme"}},
		{"error number 0", 5001000, 404, "NO_ERR", "m", []string{"5001000", "error number 0"}},
		{"status 399", 5001001, 399, "LOW_STATUS", "m", []string{"HTTP status 399", "400..599"}},
		{"status 200", 5001001, 200, "OK_STATUS", "m", []string{"HTTP status 200"}},
		{"status 600", 5001001, 600, "HIGH_STATUS", "m", []string{"HTTP status 600"}},
		{"status 0", 5001001, 0, "NO_STATUS", "m", []string{"HTTP status 0"}},
		{"lowercase reason", 5001001, 400, "lower", "m", []string{`reason "lower"`, "UPPER_SNAKE"}},
		{"mixed case reason", 5001001, 400, "Not_Found", "m", []string{`reason "Not_Found"`}},
		{"double underscore", 5001001, 400, "A__B", "m", []string{`reason "A__B"`}},
		{"leading underscore", 5001001, 400, "_A", "m", []string{`reason "_A"`}},
		{"trailing underscore", 5001001, 400, "A_", "m", []string{`reason "A_"`}},
		{"leading digit", 5001001, 400, "1A", "m", []string{`reason "1A"`}},
		{"hyphen", 5001001, 400, "A-B", "m", []string{`reason "A-B"`}},
		{"space", 5001001, 400, "A B", "m", []string{`reason "A B"`}},
		{"empty reason", 5001001, 400, "", "m", []string{`reason ""`}},
		{"reason too long", 5001001, 400, strings.Repeat("A", errcode.MaxReasonLen+1), "m", []string{"at most 64 bytes"}},
		{"empty message", 5001001, 400, "NO_MESSAGE", "", []string{"message is empty", "NO_MESSAGE"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := errcode.NewRegistry()
			c, err := r.New(tc.code, tc.status, tc.reason, tc.message)
			if err == nil {
				t.Fatalf("New(%d, %d, %q, %q) = %v, nil; want an error", tc.code, tc.status, tc.reason, tc.message, c)
			}
			if c != nil {
				t.Errorf("New returned a code (%v) along with the error", c)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "errcode: ") {
				t.Errorf("error %q is not prefixed with \"errcode: \"", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
			// A rejected declaration must not occupy its code or reason.
			if _, ok := r.Lookup(tc.code); ok && tc.code != 404001 {
				t.Errorf("rejected code %d is registered", tc.code)
			}
			if tc.reason != "" && tc.message == "" {
				if _, err := r.New(tc.code, tc.status, tc.reason, "now with a message"); err != nil {
					t.Errorf("declaring the fixed code after a rejection: %v", err)
				}
			}
		})
	}
}

// The default-registry New validates the same way.
func TestNewDefaultRegistryValidates(t *testing.T) {
	t.Parallel()
	if _, err := errcode.New(1, 400, "SERVICE_ZERO", "m"); err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Errorf("New with service 0 = %v; want a reserved-service error", err)
	}
	if _, err := errcode.New(7001001, 400, "lower", "m"); err == nil {
		t.Error("New with a lowercase reason succeeded")
	}
	if _, ok := errcode.Lookup(7001001); ok {
		t.Error("a rejected code is in the default registry")
	}
}

func TestRegistryDuplicates(t *testing.T) {
	t.Parallel()
	r := errcode.NewRegistry()
	first, err := r.New(5001001, 404, "ORDER_NOT_FOUND", "order not found")
	if err != nil {
		t.Fatal(err)
	}

	_, err = r.New(5001001, 409, "ORDER_EXISTS", "order exists")
	if err == nil {
		t.Fatal("duplicate code accepted")
	}
	if msg := err.Error(); !strings.Contains(msg, "5001001") || !strings.Contains(msg, "already declared") || !strings.Contains(msg, "ORDER_NOT_FOUND") {
		t.Errorf("duplicate code error = %q; want the code, the previous reason and \"already declared\"", msg)
	}

	_, err = r.New(5001002, 404, "ORDER_NOT_FOUND", "again")
	if err == nil {
		t.Fatal("duplicate reason accepted")
	}
	if msg := err.Error(); !strings.Contains(msg, "ORDER_NOT_FOUND") || !strings.Contains(msg, "already declared") || !strings.Contains(msg, "5001001") {
		t.Errorf("duplicate reason error = %q; want the reason, the previous code and \"already declared\"", msg)
	}

	// Nothing was overwritten and the rejected declarations left no trace.
	if got, _ := r.Lookup(5001001); got != first {
		t.Errorf("Lookup(5001001) = %v after duplicates; want the first declaration", got)
	}
	if _, ok := r.Lookup(5001002); ok {
		t.Error("code of a rejected duplicate reason was registered")
	}
	if _, err := r.New(5001002, 409, "ORDER_EXISTS", "order exists"); err != nil {
		t.Errorf("declaring after rejected duplicates: %v", err)
	}

	// Registries are independent.
	if _, err := errcode.NewRegistry().New(5001001, 404, "ORDER_NOT_FOUND", "order not found"); err != nil {
		t.Errorf("same code in a second registry: %v", err)
	}
}

func TestRegistryKitReserved(t *testing.T) {
	t.Parallel()
	r := errcode.NewRegistry()
	for i, k := range errcode.Kit() {
		got, ok := r.Lookup(k.Code())
		if !ok || got != k {
			t.Errorf("new registry Lookup(%d) = %v, %v; want the kit code %s", k.Code(), got, ok, k.Reason())
		}
		_, err := r.New(7_000_001+i, k.Status(), k.Reason(), "taken reason")
		if err == nil || !strings.Contains(err.Error(), "already declared") {
			t.Errorf("reason %s of a kit code: New = %v; want an already-declared error", k.Reason(), err)
		}
	}
	if _, err := r.New(7001001, 404, "NOT_FOUND", "m"); err == nil {
		t.Error("kit reason NOT_FOUND accepted in a new registry")
	}
	if _, err := r.New(404001, 404, "MY_NOT_FOUND", "m"); err == nil {
		t.Error("kit code 404001 accepted in a new registry")
	}
	if got, want := codesOf(r.Codes()), codesOf(errcode.Kit()); !slices.Equal(got, want) {
		t.Errorf("fresh registry Codes() = %v; want the kit codes %v", got, want)
	}
}

func TestRegistryConcurrentDuplicates(t *testing.T) {
	t.Parallel()
	r := errcode.NewRegistry()
	const n = 16
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		wins int
	)
	for i := range n {
		wg.Go(func() {
			// Same code, different reasons; then different codes, same reason.
			if _, err := r.New(6001001, 409, fmt.Sprintf("RACE_%d", i), "m"); err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			}
			_, _ = r.New(6002000+i+1, 409, "SAME_REASON", "m")
			_ = r.Codes()
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Errorf("%d concurrent declarations of one code succeeded; want exactly 1", wins)
	}
	same := 0
	for _, c := range r.Codes() {
		if c.Reason() == "SAME_REASON" {
			same++
		}
	}
	if same != 1 {
		t.Errorf("%d codes hold reason SAME_REASON; want 1", same)
	}
}

func TestMustNewPanicsOnDuplicate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		code   int
		reason string
		want   string
	}{
		// ErrOrderNotFound is declared in example_test.go.
		{"duplicate code", ErrOrderNotFound.Code(), "SOMETHING_ELSE", "already declared"},
		{"duplicate reason", 5001999, ErrOrderNotFound.Reason(), "already declared"},
		{"kit reason", 5001998, "NOT_FOUND", "already declared"},
		{"invalid", 5001997, "lower", "UPPER_SNAKE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				p := recover()
				if p == nil {
					t.Fatal("MustNew did not panic")
				}
				err, ok := p.(error)
				if !ok {
					t.Fatalf("MustNew panicked with %T %v; want an error", p, p)
				}
				if !strings.Contains(err.Error(), tc.want) {
					t.Errorf("panic %q does not mention %q", err, tc.want)
				}
			}()
			errcode.MustNew(tc.code, 404, tc.reason, "m")
		})
	}
	if got, _ := errcode.Lookup(ErrOrderNotFound.Code()); got != ErrOrderNotFound {
		t.Errorf("a panicking MustNew replaced %v with %v", ErrOrderNotFound, got)
	}
}

func TestCodesSorted(t *testing.T) {
	t.Parallel()
	codes := errcode.Codes()
	if !slices.IsSortedFunc(codes, func(a, b *errcode.Code) int { return a.Code() - b.Code() }) {
		t.Errorf("Codes() not sorted: %v", codesOf(codes))
	}
	for _, k := range errcode.Kit() {
		if !slices.Contains(codes, k) {
			t.Errorf("Codes() lacks kit code %d", k.Code())
		}
	}
	if !slices.Contains(codes, ErrOrderNotFound) {
		t.Error("Codes() lacks a code declared with MustNew")
	}

	// A registry's own Codes is sorted whatever the declaration order.
	r := errcode.NewRegistry()
	for _, c := range []int{9001001, 1000001, 5005005, 1000002} {
		if _, err := r.New(c, 400, fmt.Sprintf("R_%d", c), "m"); err != nil {
			t.Fatal(err)
		}
	}
	got := codesOf(r.Codes())
	if !slices.IsSorted(got) {
		t.Errorf("Registry.Codes() not sorted: %v", got)
	}
	if len(got) != len(errcode.Kit())+4 {
		t.Errorf("Registry.Codes() has %d codes; want %d", len(got), len(errcode.Kit())+4)
	}
}

func TestKit(t *testing.T) {
	t.Parallel()
	all := []*errcode.Code{
		errcode.BadRequest, errcode.Unauthenticated, errcode.Forbidden, errcode.NotFound,
		errcode.MethodNotAllowed, errcode.Conflict, errcode.RateLimited, errcode.FlowBlocked,
		errcode.ClientClosed, errcode.Internal, errcode.Panic, errcode.NotImplemented,
		errcode.CircuitOpen, errcode.SystemOverload, errcode.ConcurrencyLimited,
		errcode.Unavailable, errcode.Timeout, errcode.DeadlineExceeded,
	}
	kit := errcode.Kit()
	if len(kit) != len(all) {
		t.Errorf("Kit() has %d codes; want %d", len(kit), len(all))
	}
	for _, c := range all {
		if !slices.Contains(kit, c) {
			t.Errorf("Kit() lacks %s (%d)", c.Reason(), c.Code())
		}
	}
	if !slices.IsSorted(codesOf(kit)) {
		t.Errorf("Kit() not sorted: %v", codesOf(kit))
	}
	codes, reasons := map[int]bool{}, map[string]bool{}
	for _, c := range kit {
		if codes[c.Code()] {
			t.Errorf("kit code %d listed twice", c.Code())
		}
		if reasons[c.Reason()] {
			t.Errorf("kit reason %s listed twice", c.Reason())
		}
		codes[c.Code()], reasons[c.Reason()] = true, true

		service, module, errNum := errcode.Split(c.Code())
		if service != 0 {
			t.Errorf("kit code %d has service %d; want 0", c.Code(), service)
		}
		if module != c.Status() || c.Code()/1000 != c.Status() {
			t.Errorf("kit code %d has module %d but status %d", c.Code(), module, c.Status())
		}
		if errNum < 1 {
			t.Errorf("kit code %d has error number %d", c.Code(), errNum)
		}
		if c.Message() == "" {
			t.Errorf("kit code %d has an empty message", c.Code())
		}
		if got, ok := errcode.Lookup(c.Code()); !ok || got != c {
			t.Errorf("default registry Lookup(%d) = %v, %v", c.Code(), got, ok)
		}
	}

	// Kit returns a copy.
	kit[0] = nil
	if errcode.Kit()[0] == nil {
		t.Error("modifying the slice returned by Kit() changed the kit")
	}
}

func TestKitStatusesAndReasons(t *testing.T) {
	t.Parallel()
	tests := []struct {
		c      *errcode.Code
		code   int
		status int
		reason string
	}{
		{errcode.BadRequest, 400001, 400, "BAD_REQUEST"},
		{errcode.Unauthenticated, 401001, 401, "UNAUTHENTICATED"},
		{errcode.Forbidden, 403001, 403, "FORBIDDEN"},
		{errcode.NotFound, 404001, 404, "NOT_FOUND"},
		{errcode.MethodNotAllowed, 405001, 405, "METHOD_NOT_ALLOWED"},
		{errcode.Conflict, 409001, 409, "CONFLICT"},
		{errcode.RateLimited, 429001, 429, "RATE_LIMITED"},
		{errcode.ClientClosed, 499001, 499, "CLIENT_CLOSED_REQUEST"},
		{errcode.Internal, 500001, 500, "INTERNAL"},
		{errcode.NotImplemented, 501001, 501, "NOT_IMPLEMENTED"},
		{errcode.Unavailable, 503004, 503, "UNAVAILABLE"},
		{errcode.Timeout, 504001, 504, "TIMEOUT"},
		{errcode.DeadlineExceeded, 504002, 504, "DEADLINE_EXCEEDED"},
	}
	for _, tc := range tests {
		if tc.c.Code() != tc.code || tc.c.Status() != tc.status || tc.c.Reason() != tc.reason {
			t.Errorf("kit code = %d %d %s; want %d %d %s", tc.c.Code(), tc.c.Status(), tc.c.Reason(), tc.code, tc.status, tc.reason)
		}
	}
}

func codesOf(cs []*errcode.Code) []int {
	out := make([]int, len(cs))
	for i, c := range cs {
		out[i] = c.Code()
	}
	return out
}

func TestRegistryNewNilOption(t *testing.T) {
	t.Parallel()
	r := errcode.NewRegistry()
	_, err := r.New(8001004, http.StatusNotFound, "ITEM_NOT_FOUND", "item not found", errcode.WithSolution("x"), nil)
	if err == nil || err.Error() != "errcode: option 2 is nil" {
		t.Fatalf("nil option: %v", err)
	}
	if _, ok := r.Lookup(8001004); ok {
		t.Error("a code declared with a nil option was kept")
	}
}
