package gateway_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/herald-gw/herald/gateway"
	"github.com/herald-gw/herald/internal/testenv"
)

func TestGracefulShutdown(t *testing.T) {
	testenv.NoLeaks(t)
	const window = 2 * time.Second
	h := start(t, harnessOpts{gw: func(c *gateway.Config) {
		c.DrainWindow = window
		c.DrainConcurrency = 4
	}})
	var clients []*testenv.WSClient
	for i := range 20 {
		c, _ := h.connect(string(rune('a' + i%5)))
		clients = append(clients, c)
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		h.shutdown(10 * time.Second)
	}()

	var wg sync.WaitGroup
	afters := make([]int, len(clients))
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg, err := c.ReadText(10 * time.Second)
			if err != nil {
				t.Errorf("socket %d: %v, want the reconnect frame", i, err)
				return
			}
			var f struct {
				Type    string `json:"type"`
				AfterMS *int   `json:"after_ms"`
			}
			if json.Unmarshal([]byte(msg), &f) != nil || f.Type != "reconnect" || f.AfterMS == nil {
				t.Errorf("socket %d: got %s, want {\"type\":\"reconnect\",\"after_ms\":N}", i, msg)
				return
			}
			afters[i] = *f.AfterMS
			expectClose(t, c, 1012, "service_restart")
		}()
	}
	wg.Wait()
	<-done

	distinct := map[int]bool{}
	for i, a := range afters {
		if a < 0 || a >= int(window/time.Millisecond) {
			t.Errorf("socket %d: after_ms %d outside [0, %d)", i, a, window/time.Millisecond)
		}
		distinct[a] = true
	}
	if len(distinct) < 5 {
		t.Errorf("after_ms values %v: want them jittered", afters)
	}
	if n := h.srv.Sockets(); n != 0 {
		t.Errorf("%d sockets left after shutdown", n)
	}
	if _, err := http.Get(h.base + "/healthz"); err == nil {
		t.Error("the listener still accepts after shutdown")
	}
}

// TestDrainingRefusesNewSockets checks /readyz and /ws while a shutdown
// waits for a socket that never answers its close frame.
func TestDrainingRefusesNewSockets(t *testing.T) {
	testenv.NoLeaks(t)
	h := start(t, harnessOpts{gw: func(c *gateway.Config) {
		c.DrainWindow = 10 * time.Millisecond
		c.CloseTimeout = 3 * time.Second
	}})
	c, _ := h.connect("1")
	c.NoPong = true // and it never reads: its close handshake takes the full timeout

	ready := func() int {
		resp, err := http.Get(h.base + "/readyz")
		if err != nil {
			return -1
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := ready(); got != 200 {
		t.Fatalf("/readyz before shutdown = %d, want 200", got)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.shutdown(10 * time.Second)
	}()
	// While the socket holds the drain open, /readyz and /ws answer 503.
	testenv.Eventually(t, 2*time.Second, func() error {
		if got := ready(); got != 503 {
			return fmt.Errorf("/readyz = %d, want 503", got)
		}
		return nil
	})
	resp, err := http.Get(h.base + "/ws?token=" + h.token("2"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Errorf("/ws while draining = %d, want 503", resp.StatusCode)
	}
	<-done
	if got := ready(); got != -1 {
		t.Errorf("/readyz after shutdown = %d, want the listener closed", got)
	}
}
