// Package localnet runs a whole rainp2p network on one machine, as separate
// `rainp2p node` processes on loopback, and checks that every live node
// receives every message meant for it exactly once.
//
// It writes the home directories (keys, configs, a genesis naming the
// validators and their multiaddrs), starts and stops the processes, drives
// traffic through each node's admin API and reports what arrived. It is a
// test harness and a demo, not a deployment tool: everything lives in one
// temporary directory and listens on 127.0.0.1, or, with Config.NetNS, each
// node runs in its own network namespace on its own address (package
// netns), from homes written by package testnet.
package localnet
