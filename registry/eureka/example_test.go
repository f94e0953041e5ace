package eureka_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/gingov/gingov/registry"
	"github.com/gingov/gingov/registry/eureka"
)

// Register an instance with Eureka, find it as another service would, and
// remove it. Spring Cloud clients find it under the service id "orders".
func ExampleNew() {
	eurekaURL, stop := fakeEureka() // e.g. "http://eureka-1:8761/eureka"
	defer stop()

	eu, err := eureka.New([]string{eurekaURL},
		eureka.WithRenewalInterval(10*time.Second), // default 30 s
		eureka.WithLeaseDuration(30*time.Second),   // default 90 s
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer eu.Close()

	ctx := context.Background()
	ins := &registry.ServiceInstance{Name: "orders", Version: "v1", Address: "10.0.0.7:8080"}
	if err := eu.Register(ctx, ins); err != nil { // heartbeats run until Deregister
		fmt.Println(err)
		return
	}
	list, err := eu.GetService(ctx, "orders")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range list {
		fmt.Println(s.ID, s.Address, s.Version)
	}
	if err := eu.Deregister(ctx, ins); err != nil {
		fmt.Println(err)
	}
	// Output:
	// orders-10.0.0.7-8080 10.0.0.7:8080 v1
}

// fakeEureka serves the part of the Eureka REST API the example uses, so
// that it runs without a server (the tests use a real one).
func fakeEureka() (string, func()) {
	var mu sync.Mutex
	apps := map[string]map[string]json.RawMessage{} // app -> id -> instance
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/eureka/apps/"), "/")
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.Method == http.MethodPost && len(parts) == 1:
			var env struct {
				Instance json.RawMessage `json:"instance"`
			}
			body, _ := io.ReadAll(r.Body)
			var id struct {
				InstanceID string `json:"instanceId"`
			}
			if json.Unmarshal(body, &env) != nil || json.Unmarshal(env.Instance, &id) != nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			if apps[parts[0]] == nil {
				apps[parts[0]] = map[string]json.RawMessage{}
			}
			apps[parts[0]][id.InstanceID] = env.Instance
			w.WriteHeader(http.StatusNoContent)
		case r.Method == http.MethodGet && len(parts) == 1 && len(apps[parts[0]]) > 0:
			var list []json.RawMessage
			for _, in := range apps[parts[0]] {
				list = append(list, in)
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"application": map[string]any{"name": parts[0], "instance": list}})
		case r.Method == http.MethodDelete && len(parts) == 2:
			delete(apps[parts[0]], parts[1])
		case r.Method == http.MethodPut && len(parts) >= 2 && apps[parts[0]][parts[1]] != nil:
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	return srv.URL + "/eureka", srv.Close
}
