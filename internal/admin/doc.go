// Package admin is the node's loopback-only HTTP+JSON control surface:
// broadcast, send, status, peers, a live Server-Sent Events stream of
// delivered envelopes, and Prometheus metrics.
//
// It is for operators and for localnet orchestration on the same machine;
// it is not an RPC for remote clients and refuses non-loopback addresses.
package admin
