package otlpopt

import "testing"

func TestCheckEndpoint(t *testing.T) {
	for ep, ok := range map[string]bool{
		"127.0.0.1:4318": true, "localhost:4317": true, "[::1]:4318": true,
		"http://127.0.0.1:4318/custom/traces": true, "https://collector.example:443": true,
		"nowhere": false, ":4318": false, "127.0.0.1:99999": false, "127.0.0.1:x": false,
		"ftp://127.0.0.1:4318": false, "http://": false,
	} {
		if err := CheckEndpoint(ep); (err == nil) != ok {
			t.Errorf("CheckEndpoint(%q) = %v; want ok %v", ep, err, ok)
		}
	}
	if err := CheckHeaders(map[string]string{"Authorization": "x", "bad name": "y"}); err == nil {
		t.Error("a header name with a space was accepted")
	}
}
