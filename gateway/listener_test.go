package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/herald-gw/herald/internal/testenv"
)

// exhaustedListener fails Accept with EMFILE until it is told to recover.
type exhaustedListener struct {
	net.Listener
	calls     atomic.Int64
	recovered atomic.Bool
	conn      net.Conn
}

func (l *exhaustedListener) Accept() (net.Conn, error) {
	l.calls.Add(1)
	if !l.recovered.Load() {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	return l.conn, nil
}

// TestAcceptBacksOffOnEMFILE: out of descriptors, accept is retried with a
// growing pause, not in a spin, the condition is logged and counted, and
// accepting resumes when descriptors are back.
func TestAcceptBacksOffOnEMFILE(t *testing.T) {
	var logs bytes.Buffer
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&logs), zapcore.InfoLevel))
	client, server := net.Pipe()
	defer client.Close()
	fake := &exhaustedListener{conn: server}
	m, _ := newMetrics(nil, nil)
	bl := &backoffListener{Listener: fake, log: log, metrics: m, stop: make(chan struct{})}

	got := make(chan net.Conn, 1)
	go func() {
		c, err := bl.Accept()
		if err != nil {
			t.Errorf("Accept: %v", err)
		}
		got <- c
	}()
	// Five attempts take at least the first four pauses, 5+10+20+40 ms; a
	// spin would make them in microseconds. (A loaded machine only makes
	// them slower.)
	began := time.Now()
	testenv.Eventually(t, 10*time.Second, func() error {
		if n := fake.calls.Load(); n < 5 {
			return fmt.Errorf("%d accept attempts", n)
		}
		return nil
	})
	took := time.Since(began)
	fake.recovered.Store(true)
	if c := <-got; c != server {
		t.Fatalf("Accept returned %v, want the connection after recovery", c)
	}
	if took < 75*time.Millisecond {
		t.Errorf("5 accept attempts in %v, want a backoff (at least 75ms)", took)
	}
	if !bytes.Contains(logs.Bytes(), []byte("backing off")) || !bytes.Contains(logs.Bytes(), []byte("too many open files")) {
		t.Errorf("log does not report the backoff:\n%s", logs.String())
	}
}

func TestAcceptBackoffStopsOnShutdown(t *testing.T) {
	stop := make(chan struct{})
	m, _ := newMetrics(nil, nil)
	fake := &exhaustedListener{}
	bl := &backoffListener{Listener: fake, log: zap.NewNop(), metrics: m, stop: stop}
	errc := make(chan error, 1)
	go func() {
		_, err := bl.Accept()
		errc <- err
	}()
	testenv.Eventually(t, 10*time.Second, func() error { // backing off
		if fake.calls.Load() < 2 {
			return errors.New("no failed accept yet")
		}
		return nil
	})
	close(stop)
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after stop = %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept kept backing off after stop")
	}
}
