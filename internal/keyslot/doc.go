// Package keyslot computes Redis Cluster hash slots, and hash tags that
// land in a chosen slot, so that a key can share a slot with another it is
// used with in one script.
package keyslot
