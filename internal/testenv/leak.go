package testenv

import (
	"net/http"
	"testing"

	"go.uber.org/goleak"
)

// NoLeaks checks, when the test ends, that every goroutine it started has
// returned. Call it first in a test so that its check runs after every other
// cleanup. It cannot be used by parallel tests.
func NoLeaks(t testing.TB) {
	t.Helper()
	base := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		// Keep-alive connections of the default client are not the test's.
		http.DefaultClient.CloseIdleConnections()
		if err := goleak.Find(base); err != nil {
			t.Error(err)
		}
	})
}
