package main

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// failingListener's Accept fails at once with a permanent error, as a
// listener whose socket broke would.
type failingListener struct{ net.Listener }

func (failingListener) Accept() (net.Conn, error) { return nil, errors.New("accept: broken listener") }

// TestServeFailureIsAnError: when the server stops on its own, run returns
// the error (main then exits 1) instead of nil.
func TestServeFailureIsAnError(t *testing.T) {
	defer func(orig func(string, string) (net.Listener, error)) { listen = orig }(listen)
	listen = func(network, addr string) (net.Listener, error) {
		ln, err := net.Listen(network, addr)
		if err != nil {
			return nil, err
		}
		return failingListener{ln}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := run(ctx, []string{"--dev", "--addr", "127.0.0.1:0", "--shutdown-timeout", "2s"},
		func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "broken listener") {
		t.Fatalf("run = %v, want the Serve error", err)
	}
	if ctx.Err() != nil {
		t.Fatal("run returned only at the test's deadline")
	}
}
