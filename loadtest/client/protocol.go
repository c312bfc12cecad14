package client

import (
	"encoding/json"
	"time"
)

// The parent drives each worker process with JSON lines on the worker's
// stdin (commands) and reads JSON lines from its stdout (events). Secrets
// travel in the plan on stdin, never on a command line.

// plan is everything a worker needs to know about its share of the run.
type Plan struct {
	Worker        int      `json:"worker"`
	Targets       []string `json:"targets"`
	SrcIPs        []string `json:"src_ips,omitempty"`
	SessionSecret []byte   `json:"session_secret"`
	UserClaim     string   `json:"user_claim"`
	SessionCookie string   `json:"session_cookie"`
	Origin        string   `json:"origin,omitempty"`
	UserPrefix    string   `json:"user_prefix"`
	ChannelPrefix string   `json:"channel_prefix,omitempty"`
	Redis         string   `json:"redis,omitempty"`
	Users         int      `json:"users"`   // users of the whole run
	Sockets       []int    `json:"sockets"` // global indexes of this worker's sockets
	Concurrency   int      `json:"concurrency"`
	// ArrivalRate, when positive, opens this worker's sockets (connect, and
	// replay's storm) in an open loop: that many a second, whether or not
	// earlier ones are welcomed, with no bound on those in flight.
	ArrivalRate  float64       `json:"arrival_rate,omitempty"`
	PayloadBytes int           `json:"payload_bytes"`
	SlowShare    float64       `json:"slow_share"`
	SlowRcvBuf   int           `json:"slow_rcvbuf"`
	DrainTimeout time.Duration `json:"drain_timeout"`
	Pollers      int           `json:"pollers"`
	// replay: users [ReplayFrom, Users) are the storm group, and those
	// below ReplayAwayTo in it close their sockets for the storm.
	// ReplayEvents is 0 when replay does not run.
	ReplayFrom   int `json:"replay_from,omitempty"`
	ReplayAwayTo int `json:"replay_away_to,omitempty"`
	ReplayEvents int `json:"replay_events,omitempty"`
}

type Command struct {
	Op       string        `json:"op"` // plan, connect, fanout, churn, slow, bc_arm, bc_wait, rp_away, rp_base, rp_storm, rp_end, stop
	Plan     *Plan         `json:"plan,omitempty"`
	Duration time.Duration `json:"duration,omitempty"`
	Rate     float64       `json:"rate,omitempty"` // publishes per second for this worker; 0 flat out
	Share    float64       `json:"share,omitempty"`
	Flood    float64       `json:"flood,omitempty"` // bytes per second per slow socket
	ID       uint64        `json:"id,omitempty"`
	Timeout  time.Duration `json:"timeout,omitempty"`
}

type Event struct {
	Ev       string    `json:"ev"` // ready, progress, result, armed, error
	Progress *Progress `json:"progress,omitempty"`
	Result   *Result   `json:"result,omitempty"`
	Err      string    `json:"err,omitempty"`
}

// progress is a worker's state, sent about once a second.
type Progress struct {
	Up        int64  `json:"up"`
	Failed    uint64 `json:"failed"`            // failed attempts so far
	Welcomed  uint64 `json:"welcomed"`          // welcomes so far, reconnects included
	Delivered uint64 `json:"delivered"`         // fan-out frames received since the start
	Waiting   string `json:"waiting,omitempty"` // what the scenario waits for, if it does
	Latency   Sparse `json:"latency"`           // since the last progress event
}

// Result is one worker's figures for one scenario. The parent adds
// them up.
type Result struct {
	Phase  string `json:"phase"`
	Up     int64  `json:"up"`
	Failed int64  `json:"failed"` // sockets down at the end of connect
	// LastWelcome is the time from the phase's start to the last welcome
	// of the phase (connect).
	LastWelcome time.Duration     `json:"last_welcome,omitempty"`
	FailedBy    map[string]uint64 `json:"failed_by,omitempty"`
	Closed      map[string]uint64 `json:"closed,omitempty"` // sessions ended, by why

	Handshakes uint64 `json:"handshakes"`
	Handshake  Sparse `json:"handshake"`

	Published     uint64 `json:"published"`
	PublishErrors uint64 `json:"publish_errors"`
	Sent          uint64 `json:"sent"`
	Delivered     uint64 `json:"delivered"`
	Lost          uint64 `json:"lost"`
	Excused       uint64 `json:"excused"`
	Resyncs       uint64 `json:"resyncs"`
	Dups          uint64 `json:"dups"`
	OutOfOrder    uint64 `json:"out_of_order"`
	SocketsLost   uint64 `json:"sockets_lost"`
	SocketsDup    uint64 `json:"sockets_dup"`
	SocketsOOO    uint64 `json:"sockets_ooo"`
	MaxLost       uint64 `json:"max_lost"`
	Latency       Sparse `json:"latency"`
	Baseline      Sparse `json:"baseline"` // slow: the readers before any socket stopped

	BroadcastGot    uint64 `json:"broadcast_got"`
	BroadcastMissed uint64 `json:"broadcast_missed"`
	Broadcast       Sparse `json:"broadcast"`

	Slow      uint64 `json:"slow"`
	Flooded   uint64 `json:"flooded"` // flood messages published to slow users
	Shed      uint64 `json:"shed"`
	StillSlow uint64 `json:"still_slow"`

	ClientCPU    time.Duration `json:"client_cpu"`     // this worker's CPU time during the phase
	ClientRSSKiB float64       `json:"client_rss_kib"` // its resident memory at the end

	Reconnects uint64        `json:"reconnects"`
	Elapsed    time.Duration `json:"elapsed"`

	Storm *StormPart `json:"replay,omitempty"` // the replay scenario's steps
}

func EncodeLine(v any) []byte {
	b, _ := json.Marshal(v)
	return append(b, '\n')
}
