package gateway_test

import (
	"encoding/binary"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/herald-gw/herald/internal/testenv"
)

// TestDisconnectLabelsBounded: the close code a client sends must not become
// a label value of its own; codes herald does not know share one bucket.
func TestDisconnectLabelsBounded(t *testing.T) {
	testenv.NoLeaks(t)
	h := start(t, harnessOpts{})
	clientCodes := []int{3000, 3999, 4001, 4777, 4999, 1000, 1003}
	for _, code := range clientCodes {
		c, _ := h.connect("42")
		payload := binary.BigEndian.AppendUint16(nil, uint16(code))
		if err := c.WriteFrame(ws.OpClose, payload); err != nil {
			t.Fatal(err)
		}
		if _, err := c.ExpectClose(5 * time.Second); err != nil {
			t.Fatalf("code %d: %v", code, err)
		}
		c.Close()
	}
	testenv.Eventually(t, 5*time.Second, func() error {
		if h.srv.Sockets() != 0 {
			return io.ErrNoProgress
		}
		return nil
	})
	resp, err := http.Get(h.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, code := range []string{"3000", "3999", "4777", "4999", "1003"} {
		if strings.Contains(string(body), `herald_disconnects_total{code="`+code+`"}`) {
			t.Errorf("client-chosen code %s became a label value", code)
		}
	}
	if got := h.metric(`herald_disconnects_total{code="other"}`); got != 5 {
		t.Errorf(`code="other" = %v, want 5`, got)
	}
	if got := h.metric(`herald_disconnects_total{code="4001"}`); got != 1 {
		t.Errorf(`code="4001" = %v, want 1 (a code herald knows keeps its label)`, got)
	}
	if got := h.metric(`herald_disconnects_total{code="1000"}`); got != 1 {
		t.Errorf(`code="1000" = %v, want 1`, got)
	}
}
