package loadtest

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"

	"github.com/herald-gw/herald/loadtest/client"
	"github.com/herald-gw/herald/loadtest/scenario"
)

// Worker is the parent's end of one worker: it writes commands to In and
// reads events from Out.
type Worker struct {
	In   io.WriteCloser
	Out  io.Reader
	Wait func() error // returns when the worker has ended, after In is closed
	Kill func()       // ends the worker at once
}

// ServeWorker runs a worker: it reads its plan and commands from in and
// writes events to out until the stop command or the end of in.
func ServeWorker(in io.Reader, out io.Writer) error { return scenario.Serve(in, out) }

// InProcess runs workers as goroutines of this process.
func InProcess(int) (Worker, error) {
	cr, cw := io.Pipe()
	er, ew := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := ServeWorker(cr, ew)
		cr.CloseWithError(io.EOF)
		ew.CloseWithError(io.EOF)
		done <- err
	}()
	var once sync.Once
	var werr error
	wait := func() error {
		once.Do(func() { werr = <-done })
		return werr
	}
	return Worker{In: cw, Out: er, Wait: wait, Kill: func() { cw.Close(); er.Close(); _ = wait() }}, nil
}

// ExecWorker returns a Spawn that runs path with args and env added to this
// process' environment, talking over its stdin and stdout; its stderr is
// passed through.
func ExecWorker(path string, args, env []string) func(int) (Worker, error) {
	return func(int) (Worker, error) {
		cmd := exec.Command(path, args...)
		cmd.Env = append(os.Environ(), env...)
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			return Worker{}, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return Worker{}, err
		}
		if err := cmd.Start(); err != nil {
			return Worker{}, err
		}
		var once sync.Once
		var werr error
		wait := func() error {
			once.Do(func() { werr = cmd.Wait() })
			return werr
		}
		return Worker{In: in, Out: out, Wait: wait, Kill: func() { _ = cmd.Process.Kill(); _ = wait() }}, nil
	}
}

// workerEnd is the parent's state of one worker.
type workerEnd struct {
	Worker
	results chan *client.Result
	armed   chan struct{}
	errs    chan error

	mu   sync.Mutex
	last *client.Progress // guarded by mu
	lat  client.Histogram // interval latency not yet shown; guarded by mu
}

func (we *workerEnd) send(c client.Command) error {
	_, err := we.In.Write(client.EncodeLine(c))
	return err
}

func (we *workerEnd) read() {
	sc := bufio.NewScanner(we.Out)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		var e client.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			we.errs <- fmt.Errorf("worker said %.200q: %w", sc.Bytes(), err)
			return
		}
		switch e.Ev {
		case "ready":
			we.armed <- struct{}{}
		case "armed":
			we.armed <- struct{}{}
		case "progress":
			we.mu.Lock()
			we.last = e.Progress
			e.Progress.Latency.MergeInto(&we.lat)
			we.mu.Unlock()
		case "result":
			// The result's count is newer than the last progress event:
			// the next progress line must not show fewer sockets up than
			// the scenario's report did.
			we.mu.Lock()
			if we.last != nil {
				we.last.Up = e.Result.Up
			}
			we.mu.Unlock()
			we.results <- e.Result
		case "error":
			we.errs <- errors.New(e.Err)
			return
		}
	}
	we.errs <- fmt.Errorf("worker ended: %v", sc.Err())
}
