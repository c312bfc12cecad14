package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-gw/herald/auth"
	"github.com/herald-gw/herald/internal/testenv"
)

// TestOpenLoopStorm: a reconnect storm in its purest form, against one
// replica in Redis mode: 2,000 clients hold a fresh token each and open
// their sockets at once, more than the replica takes in at a time. None may
// be refused: the excess waits for its turn before its upgrade, and every
// socket is welcomed. The admission settings are the defaults but for the
// cap on handshakes at work, lowered from 256 to 16: an idle machine took
// 2,000 in under 256 at a time, so with the default cap nothing waited and
// the test proved nothing there.
//
// herald is built without the race detector here (its CPU cost per
// handshake is the production one): the test is about admission under a
// storm, and the other tests run the same code under -race.
func TestOpenLoopStorm(t *testing.T) {
	const sockets = 2000
	bin := plainHerald(t)
	rd := testenv.StartRedis(t)
	rd.WaitUptime()
	f := startFleetOf(t, bin, 1, "HERALD_REDIS_URL="+rd.URL(), "HERALD_TOKEN_RATE=1000", "HERALD_TOKEN_BURST=1000", "HERALD_HANDSHAKE_CONCURRENCY=16")
	f.waitReady(10 * time.Second)
	base := "http://" + f.heralds[0].Addr

	// The tokens first, a few at a time (minting is not what is tested).
	tokens := make([]string, sockets)
	var wg sync.WaitGroup
	errs := make(chan error, sockets)
	next := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				tok, err := stormToken(f, base, fmt.Sprintf("storm-%d", i))
				tokens[i] = tok
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := range tokens {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	type outcome struct {
		conn *testenv.WSClient
		res  string // "welcome", "close <code>", or an error
	}
	out := make(chan outcome, sockets)
	began := time.Now()
	for _, tok := range tokens {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			// A browser waits for the upgrade as long as it takes.
			c, err := testenv.WSDialer{Timeout: time.Minute}.Dial(ctx, "ws://"+f.heralds[0].Addr+"/ws?token="+url.QueryEscape(tok))
			if err != nil {
				out <- outcome{res: "dial: " + err.Error()}
				return
			}
			msg, err := c.ReadText(60 * time.Second)
			switch {
			case err != nil && closeCodeOf(err) != 0:
				out <- outcome{conn: c, res: fmt.Sprintf("close %d", closeCodeOf(err))}
			case err != nil:
				out <- outcome{conn: c, res: "read: " + err.Error()}
			case strings.Contains(msg, `"type":"welcome"`):
				out <- outcome{conn: c, res: "welcome"}
			default:
				out <- outcome{conn: c, res: "first frame " + msg}
			}
		}()
	}
	results := map[string]int{}
	for range sockets {
		o := <-out
		if o.conn != nil {
			defer o.conn.Close()
		}
		results[o.res]++
	}
	took := time.Since(began)
	if results["welcome"] != sockets {
		t.Errorf("%d of %d sockets welcomed; outcomes: %s", results["welcome"], sockets, summary(results))
	}
	paced, err := f.heralds[0].Metric("herald_handshakes_paced_total")
	if err != nil {
		t.Fatal(err)
	}
	refused, err := f.heralds[0].Metric(`herald_disconnects_total{code="1013"}`)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d sockets opened at once: %s in %v; %v waited for their turn", sockets, summary(results), took.Round(time.Millisecond), paced)
	if refused != 0 {
		t.Errorf("herald closed %v sockets with 1013", refused)
		n := 0
		for _, line := range strings.Split(f.heralds[0].Logs(), "\n") {
			if strings.Contains(line, "unavailable") || strings.Contains(line, "socket refused") {
				if n++; n <= 5 {
					t.Log(line)
				}
			}
		}
	}
	if paced == 0 {
		t.Fatal("no handshake waited for its turn: the storm did not exceed the replica's admission, the test proves nothing")
	}
}

var (
	plainOnce sync.Once
	plainBin  string
	plainErr  error
)

// plainHerald builds herald without the race detector, once.
func plainHerald(t *testing.T) string {
	plainOnce.Do(func() { plainBin, plainErr = testenv.BuildHeraldNoRace(binDir) })
	if plainErr != nil {
		t.Fatal(plainErr)
	}
	return plainBin
}

// stormToken fetches a WS token for user without failing the test from a
// goroutine.
func stormToken(f *fleet, base, user string) (string, error) {
	jwt, err := auth.SignDevSession(f.session, "HS256", user, 10*time.Minute)
	if err != nil {
		return "", err
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/api/ws/token", nil)
	req.Header.Set("Authorization", "Bearer "+jwt)
	resp, err := f.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var tok struct {
		Token string `json:"token"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(body, &tok) != nil || tok.Token == "" {
		return "", fmt.Errorf("token for %s: %s %s", user, resp.Status, body)
	}
	return tok.Token, nil
}

func closeCodeOf(err error) int {
	var cf *testenv.CloseFrame
	if errors.As(err, &cf) {
		return cf.Code
	}
	return 0
}

func summary(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
