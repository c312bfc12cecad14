package loadtest

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The server figures read from each replica's /metrics. A name's value is
// the sum over its label sets.
var scrapedNames = []string{
	"process_cpu_seconds_total",
	"process_resident_memory_bytes",
	"herald_connects_total",
	"herald_messages_delivered_total",
	"herald_sockets",
	"herald_slow_consumers_total",
	"herald_inbox_replayed_events_total",
	"herald_inbox_replays_total",
	deliveryLatencyBuckets,
}

// deliveryLatencyBuckets is herald's histogram of the time from a
// message's receipt at the replica to the end of the socket write that
// sent it: its buckets, read per le, give herald's own share of the
// publish→deliver latency over a window.
const deliveryLatencyBuckets = "herald_delivery_latency_seconds_bucket"

// resyncReplays is the labelled series of herald_inbox_replays_total that
// counts the reconnects answered with resync.
const resyncReplays = `herald_inbox_replays_total{result="resync"}`

// scrape is one reading of every metrics URL; err is set when any failed.
type scrape struct {
	at     time.Time
	urls   []string
	values []map[string]float64 // per URL
	err    error
}

func (s scrape) sum(name string) float64 {
	var v float64
	for _, m := range s.values {
		v += m[name]
	}
	return v
}

// bucketQuantile returns the upper bound, in milliseconds, of the bucket of
// histogram name (a _bucket series, summed over the replicas) that holds
// its q-quantile over the window from before to s; 0 when nothing was
// observed, +Inf past the last finite bound.
func (s scrape) bucketQuantile(before scrape, name string, q float64) float64 {
	type bucket struct {
		key   string
		le, n float64
	}
	var bs []bucket
	prefix := name + `{le="`
	for _, m := range s.values {
		for k := range m {
			if !strings.HasPrefix(k, prefix) {
				continue
			}
			le, err := strconv.ParseFloat(strings.TrimSuffix(k[len(prefix):], `"}`), 64)
			if err != nil {
				continue
			}
			bs = append(bs, bucket{key: k, le: le})
		}
		break // every replica has the same buckets
	}
	if len(bs) == 0 {
		return 0
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	for i := range bs {
		bs[i].n = s.sum(bs[i].key) - before.sum(bs[i].key)
	}
	total := bs[len(bs)-1].n
	if total <= 0 {
		return 0
	}
	for _, b := range bs {
		if b.n >= q*total {
			return b.le * 1000
		}
	}
	return math.Inf(1)
}

// only is the reading of URL i alone.
func (s scrape) only(i int) scrape {
	return scrape{at: s.at, urls: s.urls[i : i+1], values: s.values[i : i+1]}
}

func scrapeAll(ctx context.Context, c *http.Client, urls []string) scrape {
	s := scrape{at: time.Now(), urls: urls}
	for _, u := range urls {
		m, err := scrapeOne(ctx, c, u)
		if err != nil && s.err == nil {
			s.err = err
		}
		s.values = append(s.values, m)
	}
	return s
}

func scrapeOne(ctx context.Context, c *http.Client, url string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("metrics %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics %s: HTTP %d (behind a load balancer, pass each replica with --metrics)", url, resp.StatusCode)
	}
	want := map[string]bool{}
	for _, n := range scrapedNames {
		want[n] = true
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, _ := strings.Cut(line, " ")
		series := ""
		if i := strings.IndexByte(name, '{'); i >= 0 {
			// Labels may hold spaces: the value follows the closing brace.
			j := strings.LastIndexByte(line, '}')
			if j < 0 {
				continue
			}
			series = line[:j+1]
			name, rest = line[:i], strings.TrimSpace(line[j+1:])
		}
		if !want[name] {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		m[name] += v
		if series != "" {
			m[series] += v // each labelled series too, under its full name
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("metrics %s: %w", url, err)
	}
	if _, ok := m["process_cpu_seconds_total"]; !ok {
		return nil, fmt.Errorf("metrics %s: no process_cpu_seconds_total", url)
	}
	return m, nil
}

// ServerCost is what the replicas spent during one scenario, summed over
// them, from two readings of their /metrics.
type ServerCost struct {
	CPUSeconds     float64 `json:"cpu_seconds"`
	RSSKiBBefore   float64 `json:"rss_kib_before"`
	RSSKiBAfter    float64 `json:"rss_kib_after"`
	Handshakes     float64 `json:"handshakes"` // herald_connects_total
	Deliveries     float64 `json:"deliveries"` // herald_messages_delivered_total
	SocketsAfter   float64 `json:"sockets_after"`
	SlowConsumers  float64 `json:"slow_consumers"`
	InboxReplayed  float64 `json:"inbox_replayed_events,omitempty"` // herald_inbox_replayed_events_total
	InboxResyncs   float64 `json:"inbox_resyncs,omitempty"`         // herald_inbox_replays_total{result="resync"}
	Wall           float64 `json:"wall_s"`                          // seconds between the two readings
	CPUUsPerHS     float64 `json:"cpu_us_per_handshake,omitempty"`
	CPUUsPerMsg    float64 `json:"cpu_us_per_delivery,omitempty"`
	RSSKiBPerSock  float64 `json:"rss_kib_per_socket,omitempty"`
	Error          string  `json:"error,omitempty"`
	CPUUtilisation float64 `json:"cpu_cores"` // CPU seconds per wall second
	// Replicas are the same figures for each --metrics URL, when there
	// are several: side by side, under the same load.
	Replicas []ReplicaCost `json:"replicas,omitempty"`
}

// ReplicaCost is one replica's share of a ServerCost.
type ReplicaCost struct {
	URL string `json:"url"`
	ServerCost
}

func cost(before, after scrape) *ServerCost {
	if before.err != nil || after.err != nil {
		err := before.err
		if err == nil {
			err = after.err
		}
		return &ServerCost{Error: err.Error()}
	}
	c := &ServerCost{
		CPUSeconds:    after.sum("process_cpu_seconds_total") - before.sum("process_cpu_seconds_total"),
		RSSKiBBefore:  before.sum("process_resident_memory_bytes") / 1024,
		RSSKiBAfter:   after.sum("process_resident_memory_bytes") / 1024,
		Handshakes:    after.sum("herald_connects_total") - before.sum("herald_connects_total"),
		Deliveries:    after.sum("herald_messages_delivered_total") - before.sum("herald_messages_delivered_total"),
		SocketsAfter:  after.sum("herald_sockets"),
		SlowConsumers: after.sum("herald_slow_consumers_total") - before.sum("herald_slow_consumers_total"),
		InboxReplayed: after.sum("herald_inbox_replayed_events_total") - before.sum("herald_inbox_replayed_events_total"),
		InboxResyncs:  after.sum(resyncReplays) - before.sum(resyncReplays),
		Wall:          after.at.Sub(before.at).Seconds(),
	}
	if c.Wall > 0 {
		c.CPUUtilisation = c.CPUSeconds / c.Wall
	}
	if c.Handshakes > 0 {
		c.CPUUsPerHS = c.CPUSeconds * 1e6 / c.Handshakes
	}
	if c.Deliveries > 0 {
		c.CPUUsPerMsg = c.CPUSeconds * 1e6 / c.Deliveries
	}
	if gained := c.SocketsAfter - before.sum("herald_sockets"); gained > 0 {
		c.RSSKiBPerSock = (c.RSSKiBAfter - c.RSSKiBBefore) / gained
	}
	if len(before.values) > 1 {
		for i := range before.values {
			c.Replicas = append(c.Replicas, ReplicaCost{URL: before.urls[i], ServerCost: *cost(before.only(i), after.only(i))})
		}
	}
	return c
}
