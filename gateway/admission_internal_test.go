package gateway

import (
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/herald-gw/herald/internal/testenv"
)

// TestAdmissionTurns: with one slot, waiters are admitted address by
// address, and within an address user by user, each user's oldest first.
func TestAdmissionTurns(t *testing.T) {
	type arrival struct{ ip, user string }
	tests := []struct {
		name     string
		arrivals []arrival // queued in this order behind the slot holder
		want     []string  // "ip/user" in admission order
	}{
		{
			name:     "addresses take turns",
			arrivals: []arrival{{"a", "1"}, {"a", "2"}, {"a", "3"}, {"b", "4"}},
			want:     []string{"a/1", "b/4", "a/2", "a/3"},
		},
		{
			name:     "users of one address take turns",
			arrivals: []arrival{{"a", "m"}, {"a", "m"}, {"a", "m"}, {"a", "v"}},
			want:     []string{"a/m", "a/v", "a/m", "a/m"},
		},
		{
			name:     "one user alone keeps its order",
			arrivals: []arrival{{"a", "m"}, {"a", "m"}, {"a", "m"}},
			want:     []string{"a/m", "a/m", "a/m"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := testAdmission(t, 1, 100)
			first := mustWait(t, a, "z", "z", "first")
			type result struct {
				who string
				tk  *ticket
			}
			admitted := make(chan result)
			for i, ar := range tt.arrivals {
				go func() {
					tk, err := a.wait(ar.ip, ar.user, "jti"+strconv.Itoa(i), nil, nil)
					if err != nil {
						t.Error(err)
					}
					admitted <- result{ar.ip + "/" + ar.user, tk}
				}()
				waitQueued(t, a, i+1)
			}
			first.release(false)
			for i, want := range tt.want {
				r := <-admitted
				if r.who != want {
					t.Errorf("turn %d: %s, want %s", i, r.who, want)
				}
				r.tk.release(false)
			}
		})
	}
}

func TestAdmissionRefusals(t *testing.T) {
	t.Run("a token in flight is refused at once", func(t *testing.T) {
		a := testAdmission(t, 1, 100)
		tk := mustWait(t, a, "a", "u", "same")
		if _, err := a.wait("b", "u", "same", nil, nil); !errors.Is(err, errTokenInFlight) {
			t.Fatalf("second use: %v, want errTokenInFlight", err)
		}
		tk.release(false)
		tk2 := mustWait(t, a, "b", "u", "same") // released: the store decides now
		tk2.release(false)
	})
	t.Run("a full queue refuses the newest waiter of the address holding the most", func(t *testing.T) {
		a := testAdmission(t, 1, 3)
		first := mustWait(t, a, "z", "z", "first")
		errs := make(chan error, 4)
		for i := range 3 {
			go func() {
				tk, err := a.wait("flood", "m", "m"+strconv.Itoa(i), nil, nil)
				tk.release(false)
				errs <- err
			}()
			waitQueued(t, a, i+1)
		}
		go func() {
			tk, err := a.wait("victim", "v", "v", nil, nil)
			tk.release(false)
			errs <- err
		}()
		if err := <-errs; !errors.Is(err, errAdmissionFull) {
			t.Fatalf("first outcome %v, want a flood waiter refused with errAdmissionFull", err)
		}
		waitQueued(t, a, 3)
		first.release(false)
		for range 3 {
			if err := <-errs; err != nil {
				t.Errorf("admitted waiter: %v", err)
			}
		}
	})
	t.Run("a full queue refuses a newcomer from the address holding the most", func(t *testing.T) {
		a := testAdmission(t, 1, 2)
		first := mustWait(t, a, "z", "z", "first")
		done := make(chan struct{})
		for i := range 2 {
			go func() {
				tk, _ := a.wait("flood", "m", "m"+strconv.Itoa(i), nil, nil)
				tk.release(false)
				done <- struct{}{}
			}()
			waitQueued(t, a, i+1)
		}
		if _, err := a.wait("flood", "m", "m9", nil, nil); !errors.Is(err, errAdmissionFull) {
			t.Fatalf("newcomer: %v, want errAdmissionFull", err)
		}
		first.release(false)
		<-done
		<-done
	})
	t.Run("a drain lets waiters go at once", func(t *testing.T) {
		a := testAdmission(t, 1, 10)
		first := mustWait(t, a, "z", "z", "first")
		drain := make(chan struct{})
		errs := make(chan error)
		go func() {
			_, err := a.wait("a", "u", "j", drain, nil)
			errs <- err
		}()
		waitQueued(t, a, 1)
		close(drain)
		if err := <-errs; !errors.Is(err, errAdmissionDrain) {
			t.Fatalf("drained waiter: %v, want errAdmissionDrain", err)
		}
		if a.queued != 0 || len(a.jtis) != 1 {
			t.Fatalf("after the drain: %d queued, %d tokens held, want 0 and 1", a.queued, len(a.jtis))
		}
		first.release(false)
	})
}

func testAdmission(t *testing.T, limit, queue int) *admission {
	t.Helper()
	a, err := newAdmission(admissionConfig{maxLimit: limit, queue: queue, wait: time.Minute}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.limit = newGradientLimit(limit, limit, limit)
	t.Cleanup(a.stop)
	return a
}

func mustWait(t *testing.T, a *admission, ip, user, jti string) *ticket {
	t.Helper()
	tk, err := a.wait(ip, user, jti, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// waitQueued waits until n handshakes wait in a.
func waitQueued(t *testing.T, a *admission, n int) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, func() error {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.queued != n {
			return fmt.Errorf("%d waiting, want %d", a.queued, n)
		}
		return nil
	})
}

// TestAdmissionQueue: handshakes that wait without a goroutine (queue)
// take the same turns as those of wait, and are refused by a drain or
// after the longest wait.
func TestAdmissionQueue(t *testing.T) {
	type result struct {
		who string
		tk  *ticket
		err error
	}
	enqueue := func(t *testing.T, a *admission, out chan result, ip, user, jti string) {
		t.Helper()
		tk, err, queued := a.queue(ip, user, jti, func(tk *ticket, err error) { out <- result{ip + "/" + user, tk, err} })
		if !queued {
			t.Fatalf("%s/%s not queued: %v, %v", ip, user, tk, err)
		}
	}
	t.Run("turns", func(t *testing.T) {
		a := testAdmission(t, 1, 100)
		first := mustWait(t, a, "z", "z", "first")
		out := make(chan result, 10)
		enqueue(t, a, out, "a", "1", "j1")
		enqueue(t, a, out, "a", "1", "j2")
		enqueue(t, a, out, "a", "2", "j3")
		enqueue(t, a, out, "b", "3", "j4")
		first.release(false)
		for i, want := range []string{"a/1", "b/3", "a/2", "a/1"} {
			r := <-out
			if r.who != want || r.err != nil {
				t.Fatalf("turn %d: %s %v, want %s admitted", i, r.who, r.err, want)
			}
			r.tk.release(false)
		}
	})
	t.Run("drain", func(t *testing.T) {
		a := testAdmission(t, 1, 100)
		first := mustWait(t, a, "z", "z", "first")
		out := make(chan result, 10)
		enqueue(t, a, out, "a", "1", "j1")
		enqueue(t, a, out, "b", "2", "j2")
		a.drain()
		for range 2 {
			if r := <-out; !errors.Is(r.err, errAdmissionDrain) || r.tk != nil {
				t.Fatalf("%s: %v, want errAdmissionDrain", r.who, r.err)
			}
		}
		if _, err, queued := a.queue("c", "3", "j3", nil); queued || !errors.Is(err, errAdmissionDrain) {
			t.Fatalf("after the drain: queued %v, %v; want errAdmissionDrain at once", queued, err)
		}
		if a.queued != 0 || len(a.jtis) != 1 {
			t.Fatalf("after the drain: %d queued, %d tokens held, want 0 and 1", a.queued, len(a.jtis))
		}
		first.release(false)
	})
	t.Run("longest wait", func(t *testing.T) {
		a := testAdmission(t, 1, 100)
		a.cfg.wait = time.Millisecond
		first := mustWait(t, a, "z", "z", "first")
		out := make(chan result, 10)
		enqueue(t, a, out, "a", "1", "j1")
		if r := <-out; !errors.Is(r.err, errAdmissionWait) {
			t.Fatalf("%s: %v, want errAdmissionWait", r.who, r.err)
		}
		first.release(false)
		tk := mustWait(t, a, "a", "1", "j1") // its token is free again
		tk.release(false)
	})
}
