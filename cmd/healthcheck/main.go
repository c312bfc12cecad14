// Command healthcheck is the health probe of herald's container image. The
// image holds no shell and no curl, so docker-compose's healthcheck runs this
// static binary instead: it GETs one URL (by default herald's /readyz on
// 127.0.0.1:8080) and exits 0 on a 2xx answer and 1 otherwise, printing why.
//
// Kubernetes needs none of it: its probes are httpGet.
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://127.0.0.1:8080/readyz", "URL that must answer 2xx")
	timeout := fs.Duration("timeout", 2*time.Second, "bound on the whole request")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	// No proxy from the environment: the probe is about this container.
	client := &http.Client{Timeout: *timeout, Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Get(*url)
	if err != nil {
		fmt.Fprintln(stderr, "healthcheck:", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		fmt.Fprintf(stderr, "healthcheck: %s: %s %s\n", *url, resp.Status, body)
		return 1
	}
	return 0
}
