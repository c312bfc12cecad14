package main

import (
	"errors"
	"fmt"
)

// errNoMode is returned when a replica is started without saying where its
// Redis is or that it runs alone. A fleet that forgot HERALD_REDIS_URL would
// otherwise split into single-process islands that each answer ready.
var errNoMode = errors.New("no Redis configured, and no --standalone: give --redis-url (one Redis or Sentinel, HERALD_REDIS_URL), " +
	"--redis-cluster (HERALD_REDIS_CLUSTER), or run one process without Redis on purpose with --standalone (HERALD_STANDALONE=true); " +
	"to try herald on this machine, run herald --dev")

// errNoSessionKey is returned when no session key is configured outside
// --dev. It names the settings, and --dev for trying herald without one.
var errNoSessionKey = errors.New("no session key: give --session-secret (HERALD_SESSION_SECRET or HERALD_SESSION_SECRET_FILE), " +
	"--session-public-key or --session-jwks, the key your backend signs session JWTs with; " +
	"to try herald on this machine without one, run herald --dev")

// checkMode refuses settings that leave the replica's mode unsaid or
// contradictory, and a missing session key, before anything starts.
func checkMode(o *options) error {
	redis := o.RedisURL != "" || o.RedisCluster != ""
	if o.Standalone && redis {
		return fmt.Errorf("--standalone runs without Redis, but %s is set: give one or the other", redisSetting(o))
	}
	if !redis && !o.Standalone && !o.Dev {
		return errNoMode
	}
	if !o.Dev && o.SessionSecret == "" && o.SessionPublicKey == "" && o.SessionJWKS == "" {
		return errNoSessionKey
	}
	if o.RebalanceMargin <= 0 {
		return fmt.Errorf("--rebalance-margin %g: must be above 0 (--rebalance=false turns shedding off)", o.RebalanceMargin)
	}
	if o.RebalanceRate <= 0 || o.RebalanceRate > 1 {
		return fmt.Errorf("--rebalance-rate %g: must be above 0 and at most 1 (--rebalance=false turns shedding off)", o.RebalanceRate)
	}
	return nil
}

// redisSetting names the Redis setting that is set.
func redisSetting(o *options) string {
	if o.RedisURL != "" {
		return "--redis-url (HERALD_REDIS_URL)"
	}
	return "--redis-cluster (HERALD_REDIS_CLUSTER)"
}
