package wscore

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Defaults of Config's zero values. The gateway and cmd/herald refer to
// them, so that each is written once.
const (
	DefaultPingInterval    = 30 * time.Second
	DefaultIdleTimeout     = 60 * time.Second
	DefaultWriteTimeout    = 10 * time.Second
	DefaultCloseTimeout    = 5 * time.Second
	DefaultMaxMessageBytes = 4096
	DefaultMaxQueueBytes   = 256 << 10
)

// Config configures a Core. Zero values mean the defaults named in each
// field's comment.
type Config struct {
	// Pollers is the number of epoll loops; Writers the number of write
	// workers. Zero means GOMAXPROCS for each.
	Pollers int
	Writers int
	// MaxMessageBytes bounds a client message (fragments reassembled);
	// larger ones close the socket with 1009. Zero means
	// DefaultMaxMessageBytes; at least 125.
	MaxMessageBytes int
	// MaxQueueBytes caps a socket's unsent output. Zero means
	// DefaultMaxQueueBytes; at least 4096.
	MaxQueueBytes int
	// PingInterval is how often every socket is pinged (zero:
	// DefaultPingInterval); IdleTimeout closes with 1001 a socket from which
	// nothing arrived for that long (zero: DefaultIdleTimeout; it must
	// exceed PingInterval); WriteTimeout drops a socket whose output made no
	// progress for that long (zero: DefaultWriteTimeout); CloseTimeout is
	// how long a closing socket may take to answer with its close frame
	// (zero: DefaultCloseTimeout).
	PingInterval time.Duration
	IdleTimeout  time.Duration
	WriteTimeout time.Duration
	CloseTimeout time.Duration
}

func (c *Config) setDefaults() {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	defInt := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.PingInterval, DefaultPingInterval)
	def(&c.IdleTimeout, DefaultIdleTimeout)
	def(&c.WriteTimeout, DefaultWriteTimeout)
	def(&c.CloseTimeout, DefaultCloseTimeout)
	defInt(&c.MaxMessageBytes, DefaultMaxMessageBytes)
	defInt(&c.MaxQueueBytes, DefaultMaxQueueBytes)
	defInt(&c.Pollers, runtime.GOMAXPROCS(0))
	defInt(&c.Writers, runtime.GOMAXPROCS(0))
}

// Validate reports settings the core refuses, after defaults are applied.
func (c *Config) Validate() error {
	var errs []error
	if c.IdleTimeout <= c.PingInterval {
		errs = append(errs, fmt.Errorf("idle timeout (%s) must be longer than the ping interval (%s), or live sockets are reaped between pings", c.IdleTimeout, c.PingInterval))
	}
	if c.PingInterval < 0 || c.WriteTimeout < 0 || c.CloseTimeout < 0 {
		errs = append(errs, errors.New("durations must not be negative"))
	}
	if c.MaxMessageBytes < 125 {
		errs = append(errs, fmt.Errorf("max message bytes %d: must be at least 125", c.MaxMessageBytes))
	}
	if c.MaxQueueBytes < 4096 {
		errs = append(errs, fmt.Errorf("max queue bytes %d: must be at least 4096", c.MaxQueueBytes))
	}
	if c.Pollers < 0 || c.Writers < 0 {
		errs = append(errs, errors.New("pollers and writers must not be negative"))
	}
	return errors.Join(errs...)
}

// Core is a set of epoll loops, write workers and a heartbeat serving any
// number of sockets. Create it with New and stop it with Close.
type Core struct {
	cfg     Config
	pollers []*poller
	writers *writePool

	nextPoller    atomic.Uint32
	slowConsumers atomic.Uint64
	writeTimeouts atomic.Uint64
	stop          chan struct{}  // closed by Close: the heartbeat returns
	loops         sync.WaitGroup // pollers and the heartbeat

	mu     sync.RWMutex
	closed bool // guarded by mu; no socket is registered after it is set
}

// New starts a Core: cfg.Pollers epoll loops, cfg.Writers write workers and
// the heartbeat.
func New(cfg Config) (*Core, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("wscore: %w", err)
	}
	k := &Core{cfg: cfg, stop: make(chan struct{})}
	for range cfg.Pollers {
		p, err := newPoller()
		if err != nil {
			for _, p := range k.pollers {
				p.close()
			}
			return nil, fmt.Errorf("wscore: %w", err)
		}
		k.pollers = append(k.pollers, p)
	}
	k.writers = newWritePool(cfg.Writers)
	readBuf := max(16<<10, cfg.MaxMessageBytes+14)
	for _, p := range k.pollers {
		k.loops.Add(1)
		go func() {
			defer k.loops.Done()
			p.run(readBuf)
		}()
	}
	k.loops.Add(1)
	go func() {
		defer k.loops.Done()
		k.heartbeat()
	}()
	return k, nil
}

// Config returns the core's configuration, defaults applied.
func (k *Core) Config() Config { return k.cfg }

// Close stops the pollers, the write workers and the heartbeat. Sockets
// still open are left to their owners (Drop them first); Start refuses new
// ones.
func (k *Core) Close() {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return
	}
	k.closed = true
	k.mu.Unlock()
	close(k.stop)
	for _, p := range k.pollers {
		p.close()
	}
	k.writers.close()
	k.loops.Wait()
}

// NewConn takes over an upgraded connection. The core takes its descriptor
// (a duplicate of it, non-blocking) and closes nc at once, so that no
// net.Conn or runtime poll descriptor is kept per socket; nc must expose
// its descriptor through syscall.Conn and must not be used after NewConn
// returns, whatever it returns. The socket is in Handshake: nothing is read
// or written until Start. h receives its events.
func (k *Core) NewConn(nc net.Conn, h Handler) (*Conn, error) {
	fd, err := takeFD(nc)
	if err != nil {
		return nil, err
	}
	now := Now()
	c := &Conn{
		core:     k,
		poller:   k.pollers[int(k.nextPoller.Add(1))%len(k.pollers)],
		sock:     sockFD{fd: int32(fd)},
		h:        h,
		nextPing: now + int64(k.cfg.PingInterval),
	}
	c.lastSeen.Store(now)
	return c, nil
}

// takeFD duplicates nc's descriptor, sets the copy non-blocking and closes
// nc.
func takeFD(nc net.Conn) (int, error) {
	defer nc.Close()
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1, errors.New("wscore: connection has no file descriptor")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, dupErr := -1, error(nil)
	if err := raw.Control(func(f uintptr) { fd, dupErr = dupNonBlocking(int(f)) }); err != nil {
		return -1, err
	}
	return fd, dupErr
}

// registerLocked adds c to its poller. c.mu is held.
func (k *Core) registerLocked(c *Conn) error {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.closed {
		return ErrClosed
	}
	return c.poller.addLocked(c)
}

// Stats are counts since the core started.
type Stats struct {
	SlowConsumers uint64 // sockets shed because their queue passed its cap
	WriteTimeouts uint64 // sockets dropped because their output was stuck
}

// Stats returns the core's counts.
func (k *Core) Stats() Stats {
	return Stats{SlowConsumers: k.slowConsumers.Load(), WriteTimeouts: k.writeTimeouts.Load()}
}

// AppendConns appends every started socket that is not closed yet to dst.
func (k *Core) AppendConns(dst []*Conn) []*Conn {
	for _, p := range k.pollers {
		dst = p.appendConns(dst)
	}
	return dst
}

// epoch anchors Now on the monotonic clock.
var epoch = time.Now()

// Now is the core's clock: monotonic nanoseconds since the process
// started (plus one, so that it is never 0). MessageFrame takes its values.
func Now() int64 { return int64(time.Since(epoch)) + 1 }

// wallTime converts a value of Now to wall-clock time.
func wallTime(t int64) time.Time { return epoch.Add(time.Duration(t - 1)) }
