// Package scenario plays the load tester's scenarios inside one worker:
// connect, fanout, churn, slow, broadcast and the reconnect storm (named
// replay on the command line and in the report), each a command from the
// parent answered with a client.Result. Serve is a worker's command loop.
//
// The scenarios publish through Redis (PUBLISH, and the inbox appends
// through publish.Publisher as a backend would) and drive the sockets of a
// client.Fleet only through its methods. Concurrency: commands run one at
// a time; the worker's fields are owned by the command loop, and the
// storm's live fan-out runs on its own goroutine across the storm's steps
// until the loop stops it.
package scenario
