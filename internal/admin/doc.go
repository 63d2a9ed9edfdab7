// Package admin is the node's loopback-only HTTP+JSON control surface:
// broadcast, send, status, peers, a live Server-Sent Events stream of
// delivered envelopes, and Prometheus metrics.
//
// It is for operators and for localnet orchestration on the same machine;
// it is not an RPC for remote clients and refuses non-loopback addresses.
// Requests must name a loopback Host (127.0.0.1, localhost or [::1]), carry
// no Origin other than a loopback http:// one, and POST JSON bodies as
// application/json, so a web page cannot drive it by cross-site requests or
// DNS rebinding.
package admin
