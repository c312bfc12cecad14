package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

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
	// On a connection of its own (the listener's upgrade path), with and
	// without the upgrade's headers.
	for _, req := range []string{
		string(upgradeRequest(h.token("3"))),
		"GET /ws?token=x HTTP/1.1\r\nHost: x\r\n\r\n",
	} {
		r := h.rawDial(t)
		r.write([]byte(req))
		if resp, body := r.response(); resp.StatusCode != 503 || !strings.Contains(body, `"draining"`) {
			t.Errorf("/ws while draining, fresh connection = %d %s, want 503 draining", resp.StatusCode, body)
		}
	}
	<-done
	if got := ready(); got != -1 {
		t.Errorf("/readyz after shutdown = %d, want the listener closed", got)
	}
}

// TestShutdownWithHandshakeInFlight: a socket whose subscription is still
// unconfirmed when the drain begins is refused before its welcome with 1012
// (or gets the reconnect frame and then 1012), and Shutdown returns as soon
// as the sockets are gone rather than at its deadline.
func TestShutdownWithHandshakeInFlight(t *testing.T) {
	testenv.NoLeaks(t)
	testenv.NoFDLeaks(t)
	broker := newHoldBroker("held")
	defer broker.Release()
	h := start(t, harnessOpts{broker: broker, gw: func(c *gateway.Config) {
		c.DrainWindow = 10 * time.Millisecond
		c.HandshakeTimeout = 8 * time.Second
	}})
	open, _ := h.connect("open")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	held, err := testenv.DialWS(ctx, h.ws+"?token="+url.QueryEscape(h.token("held")), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	testenv.Eventually(t, 5*time.Second, func() error {
		if len(h.srv.UserSockets("held")) != 1 {
			return errors.New("held socket not registered yet")
		}
		return nil
	})

	const deadline = 6 * time.Second
	began := time.Now()
	done := make(chan time.Duration)
	go func() {
		h.shutdown(deadline)
		done <- time.Since(began)
	}()
	go func() { // the open socket answers its close frame
		_, _ = open.ExpectClose(5 * time.Second)
	}()

	var got []string
	for {
		f, err := held.ReadFrame(5 * time.Second)
		if err != nil {
			t.Errorf("held socket: %v after %q, want a close frame 1012", err, got)
			break
		}
		if f.Op == ws.OpClose {
			code, _ := ws.ParseCloseFrameData(f.Payload)
			got = append(got, fmt.Sprintf("close %d", code))
			_ = held.WriteFrame(ws.OpClose, f.Payload)
			break
		}
		var m struct{ Type string }
		_ = json.Unmarshal(f.Payload, &m)
		got = append(got, m.Type)
	}
	want1, want2 := "[close 1012]", "[reconnect close 1012]"
	if s := fmt.Sprint(got); s != want1 && s != want2 {
		t.Errorf("held socket received %s, want %s or %s", s, want1, want2)
	}
	took := <-done
	if took > deadline/2 {
		t.Errorf("Shutdown took %s with a %s deadline: it must return once the sockets are gone", took, deadline)
	}
}
