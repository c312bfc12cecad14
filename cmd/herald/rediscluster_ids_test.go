package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/herald-gw/herald/auth"
	"github.com/herald-gw/herald/fanout/publish"
	"github.com/herald-gw/herald/internal/testenv"
)

// TestRedisClusterBraceIDs: on a Redis Cluster a user's channel and inbox
// are user:{<id>} and inbox:{<id>}, and Redis hashes the text between the
// first "{" and the next "}". An id that begins with "}" leaves that text
// empty, so each whole name is hashed and the two land on different slots:
// every handshake of that user failed (1013, "non local key"). Such an id
// is refused at the token endpoint with a 400 that says why; ids with
// braces elsewhere keep one slot and work, inbox included.
func TestRedisClusterBraceIDs(t *testing.T) {
	rc := testenv.StartRedisCluster(t, 3, 0)
	f := startFleet(t, 1, "HERALD_REDIS_CLUSTER="+strings.Join(rc.Addrs(), ","))
	f.waitReady(20 * time.Second)
	pub, err := publish.NewPublisher(rc.Client(), publish.PublisherConfig{})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("refused", func(t *testing.T) {
		for _, user := range []string{"}", "}x", "}{x}"} {
			status, body := f.tokenResponse(0, user)
			var e struct {
				Error string `json:"error"`
			}
			_ = json.Unmarshal([]byte(body), &e)
			if status != http.StatusBadRequest || e.Error != "user_id_not_routable" {
				t.Errorf("token for %q: %d %s; want 400 user_id_not_routable", user, status, body)
			}
		}
	})
	t.Run("accepted", func(t *testing.T) {
		for _, user := range []string{"a}b", "{a}", "a{b", "x}"} {
			s := f.connect(0, user)
			msg := `{"type":"hi","to":` + jsonString(user) + `}`
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := pub.SendToUser(ctx, user, []byte(msg))
			cancel()
			if err != nil {
				t.Fatalf("SendToUser(%q) through the inbox: %v", user, err)
			}
			testenv.Eventually(t, 10*time.Second, func() error {
				for _, m := range s.after(0) {
					if strings.HasPrefix(m, `{"inbox_id":`) && strings.Contains(m, `"type":"hi"`) {
						return nil
					}
				}
				return errNotYet(user)
			})
		}
	})
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

type errNotYet string

func (e errNotYet) Error() string { return "socket of " + string(e) + " received no inbox event" }

// tokenResponse asks replica i for a WS token for user and returns the
// status and body, whatever they are.
func (f *fleet) tokenResponse(i int, user string) (int, string) {
	f.t.Helper()
	jwt, err := auth.SignDevSession(f.session, "HS256", user, 10*time.Minute)
	if err != nil {
		f.t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+f.heralds[i].Addr+"/api/ws/token", nil)
	req.Header.Set("Authorization", "Bearer "+jwt)
	resp, err := f.client.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}
