package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-gw/herald/gateway"
	"github.com/herald-gw/herald/internal/testenv"
)

// TestSocketInfo checks what the registry records about a socket, with the
// client address taken from X-Forwarded-For only when the peer is trusted.
func TestSocketInfo(t *testing.T) {
	testenv.NoLeaks(t)
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
		want    string
	}{
		{"trusted proxy", []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, "198.51.100.4"},
		{"untrusted peer", nil, "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, harnessOpts{gw: func(c *gateway.Config) { c.TrustedProxies = tc.trusted }})
			before := time.Now()
			d := testenv.WSDialer{Header: http.Header{
				"X-Forwarded-For": {"198.51.100.4"},
				"User-Agent":      {"herald-test/1.0"},
			}}
			c, w := h.connectWith(d, "42")
			c.WriteText(`{"type":"ping"}`)
			c.ReadText(5 * time.Second)
			infos := h.srv.UserSockets("42")
			if len(infos) != 1 {
				t.Fatalf("UserSockets = %v, want one", infos)
			}
			got := infos[0]
			if got.ID != w.SocketID || got.UserID != "42" || got.RemoteIP != tc.want || got.UserAgent != "herald-test/1.0" {
				t.Errorf("info = %+v, want id %s, ip %s, user agent herald-test/1.0", got, w.SocketID, tc.want)
			}
			if got.ConnectedAt.Before(before) || got.LastSeen.Before(got.ConnectedAt) {
				t.Errorf("connected at %s, last seen %s: want last seen after connect, after %s", got.ConnectedAt, got.LastSeen, before)
			}
			lines := h.logs.lines("connect")
			if len(lines) != 1 || lines[0]["ip"] != tc.want || lines[0]["user_agent"] != "herald-test/1.0" {
				t.Errorf("connect log = %v, want ip %s and the user agent", lines, tc.want)
			}
		})
	}
}

// TestAPIUnderConcurrency publishes through every in-process operation while
// sockets of the same users connect and disconnect, under the race detector,
// and checks that the counts settle and sockets still receive.
func TestAPIUnderConcurrency(t *testing.T) {
	testenv.NoLeaks(t)
	h := start(t, harnessOpts{gw: func(c *gateway.Config) { c.TokenBurst = 1000; c.TokenRate = 1000 }})
	ctx := context.Background()
	stable, _ := h.connect("stable")

	// The stable socket receives every broadcast. It is read throughout,
	// and the publishers may run at most window broadcasts ahead of what it
	// has read: unthrottled, four publishers outrun one reader on a loaded
	// machine, and the socket is rightly shed as a slow consumer (4009).
	const window = 256
	credits := make(chan struct{}, window)
	for range window {
		credits <- struct{}{}
	}
	stableDone := make(chan error, 1)
	go func() {
		for {
			msg, err := stable.ReadText(30 * time.Second)
			if err != nil {
				stableDone <- fmt.Errorf("stable socket: %w", err)
				return
			}
			switch msg {
			case "last":
				stableDone <- nil
				return
			case "to all", "to others":
				credits <- struct{}{}
			}
		}
	}()

	stop := make(chan struct{})
	var pubs sync.WaitGroup
	for i := range 4 {
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			for n := 0; ; n++ {
				user := fmt.Sprintf("u%d", n%4)
				op := (n + i) % 4
				if op == 1 || op == 2 { // reaches the stable socket
					select {
					case <-credits:
					case <-stop:
						return
					}
				}
				select {
				case <-stop:
					return
				default:
				}
				switch op {
				case 0:
					h.srv.SendToUser(ctx, user, []byte("to user"))
				case 1:
					h.srv.Broadcast(ctx, []byte("to all"))
				case 2:
					h.srv.BroadcastExcept(ctx, user, []byte("to others"))
				case 3:
					for _, s := range h.srv.UserSockets(user) {
						h.srv.SendToSocket(ctx, s.ID, []byte("to socket"))
					}
					_ = h.srv.Sockets() + h.srv.Users()
				}
			}
		}()
	}
	var conns sync.WaitGroup
	for i := range 8 {
		conns.Add(1)
		go func() {
			defer conns.Done()
			for n := range 25 {
				c, err := h.dial(h.token(fmt.Sprintf("u%d", (i+n)%4)))
				if err != nil {
					t.Error(err)
					return
				}
				if msg, err := c.ReadText(5 * time.Second); err != nil || !strings.Contains(msg, "welcome") {
					t.Errorf("welcome: %q %v", msg, err)
				}
				c.Close()
			}
		}()
	}
	conns.Wait()
	close(stop)
	pubs.Wait()

	testenv.Eventually(t, 5*time.Second, func() error {
		if h.srv.Sockets() != 1 || h.srv.Users() != 1 {
			return fmt.Errorf("%d sockets, %d users; want only the stable one", h.srv.Sockets(), h.srv.Users())
		}
		return nil
	})
	if err := h.srv.SendToUser(ctx, "stable", []byte("last")); err != nil {
		t.Fatal(err)
	}
	if err := <-stableDone; err != nil {
		t.Fatal(err)
	}
}

// TestLocalUsers lists the users with a socket on the replica, sorted, each
// once however many sockets it holds, and forgets a user whose last socket
// closed.
func TestLocalUsers(t *testing.T) {
	testenv.NoLeaks(t)
	h := start(t, harnessOpts{})
	if got := h.srv.LocalUsers(0); len(got) != 0 {
		t.Fatalf("LocalUsers before any socket = %v, want none", got)
	}
	carol, _ := h.connect("carol")
	h.connect("alice")
	h.connect("bob")
	h.connect("alice")
	for _, tc := range []struct {
		max  int
		want string
	}{
		{0, "alice,bob,carol"},
		{-1, "alice,bob,carol"},
		{5, "alice,bob,carol"},
		{3, "alice,bob,carol"},
	} {
		if got := strings.Join(h.srv.LocalUsers(tc.max), ","); got != tc.want {
			t.Errorf("LocalUsers(%d) = %s, want %s", tc.max, got, tc.want)
		}
	}
	if got := h.srv.LocalUsers(2); len(got) != 2 || got[0] >= got[1] {
		t.Errorf("LocalUsers(2) = %v, want two sorted ids", got)
	}
	carol.Close()
	testenv.Eventually(t, 5*time.Second, func() error {
		if got := strings.Join(h.srv.LocalUsers(0), ","); got != "alice,bob" {
			return fmt.Errorf("LocalUsers after carol left = %s, want alice,bob", got)
		}
		return nil
	})
}
