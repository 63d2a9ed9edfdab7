// Package netns builds a private network of Linux network namespaces for
// localnet: a hub namespace holding a bridge, and one namespace per node
// joined to it by a veth pair, each with its own address in 10.77.0.0/16.
// Nothing is added to the caller's own namespace, so traffic stays inside
// the namespaces it creates. It runs commands in a namespace through
// `ip netns exec` and dials into one from the calling process (setns on a
// locked thread), for the nodes' loopback-only admin APIs.
//
// It needs iproute2's ip and CAP_NET_ADMIN plus CAP_SYS_ADMIN; Available
// says whether this process has them and why not. It is not a general
// network emulator: no latency, loss or routing between subnets.
package netns
