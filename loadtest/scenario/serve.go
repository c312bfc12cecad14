package scenario

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"

	"github.com/herald-gw/herald/loadtest/client"
)

// worker plays the scenarios on one fleet, one command at a time, for the
// parent. Its fields are owned by the command loop (serve).
type worker struct {
	f          *client.Fleet
	live       *liveFanout // the storm's fan-out between its steps
	stormBegan time.Time   // when the storm scenario began
}

// Serve runs a worker: it reads its plan and commands from in and writes
// events to out until the stop command or the end of in.
func Serve(in io.Reader, out io.Writer) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	if !sc.Scan() {
		return fmt.Errorf("worker: no plan: %v", sc.Err())
	}
	var c client.Command
	if err := json.Unmarshal(sc.Bytes(), &c); err != nil || c.Op != "plan" || c.Plan == nil {
		return fmt.Errorf("worker: bad plan: %v", err)
	}
	if err := raiseFDLimit(uint64(len(c.Plan.Sockets)) + uint64(c.Plan.Concurrency) + 256); err != nil {
		_, _ = out.Write(client.EncodeLine(client.Event{Ev: "error", Err: err.Error()}))
		return err
	}
	f, err := client.New(c.Plan)
	if err != nil {
		_, _ = out.Write(client.EncodeLine(client.Event{Ev: "error", Err: err.Error()}))
		return err
	}
	w := &worker{f: f}
	return w.serve(sc, out)
}

// raiseFDLimit lifts the soft descriptor limit to the hard one and checks
// that need fits.
func raiseFDLimit(need uint64) error {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return nil
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
		_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l)
	}
	if l.Cur < need {
		return fmt.Errorf("worker needs %d file descriptors, the limit is %d: use more --procs", need, l.Cur)
	}
	return nil
}

// serve reads commands from in and writes events to out until stop or EOF.
func (w *worker) serve(in *bufio.Scanner, out io.Writer) error {
	var outMu sync.Mutex
	emit := func(e client.Event) {
		outMu.Lock()
		defer outMu.Unlock()
		_, _ = out.Write(client.EncodeLine(e))
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	progDone := make(chan struct{})
	go func() {
		defer close(progDone)
		for {
			select {
			case <-tick.C:
				emit(client.Event{Ev: "progress", Progress: w.f.Progress()})
			case <-w.f.Context().Done():
				return
			}
		}
	}()
	defer func() {
		w.stopLive()
		w.f.Shutdown()
		<-progDone
	}()
	// Commands are read on their own goroutine so that the end of the
	// input (the parent gave up: its deadline passed, or it died) cancels
	// the command in progress at once.
	cmds := make(chan []byte)
	var readErr error
	go func() {
		defer close(cmds)
		for in.Scan() {
			select {
			case cmds <- append([]byte(nil), in.Bytes()...):
			case <-w.f.Context().Done():
				return
			}
		}
		readErr = in.Err()
		w.f.Cancel()
	}()
	emit(client.Event{Ev: "ready"})
	for line := range cmds {
		var c client.Command
		if err := json.Unmarshal(line, &c); err != nil {
			return fmt.Errorf("bad command: %w", err)
		}
		var r *client.Result
		switch c.Op {
		case "connect":
			r = w.f.ConnectAll(c.Timeout)
		case "fanout":
			r = w.fanout(c)
		case "churn":
			r = w.churn(c)
		case "slow":
			r = w.slow(c)
		case "bc_arm":
			w.f.ArmBroadcast(c.ID)
			emit(client.Event{Ev: "armed"})
			continue
		case "bc_wait":
			r = w.broadcastWait(c)
		case "storm_away":
			r = w.stormAway(c)
		case "storm_base":
			r = w.stormBase(c)
		case "storm_storm":
			r = w.stormStorm(c)
		case "storm_cut":
			r = w.stormCut()
		case "storm_end":
			r = w.stormEnd()
		case "stop":
			return nil
		default:
			return fmt.Errorf("unknown command %q", c.Op)
		}
		if err := w.f.Err(); err != nil {
			emit(client.Event{Ev: "error", Err: err.Error()})
			return err
		}
		if w.f.Context().Err() != nil {
			break
		}
		emit(client.Event{Ev: "result", Result: r})
	}
	return readErr
}
