package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	var stderr strings.Builder
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-side", "kratos3", "-sample", "1"}, pw, &stderr)
		pw.Close()
	}()
	addr, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err, <-done)
	}
	go io.Copy(io.Discard, pr)
	for range 3 {
		resp, err := http.Get("http://" + strings.TrimSpace(addr) + "/ping")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != `{"message":"pong"}` {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if want := "3 spans exported, 3 log lines"; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr %q lacks %q", stderr.String(), want)
	}
}

func TestRunRejects(t *testing.T) {
	for _, args := range [][]string{
		{"-side", "gingov", "-addr", "0.0.0.0:0"},
		{"-side", "gingov", "-sample", "0.125"},
		{"-side", "echo"},
		{"-side", "kratos2", "-row", "full-nosentinel"},
	} {
		if err := run(t.Context(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("run(%q) passed", args)
		}
	}
}
