// Package background is the gossip layer every participant joins:
// validators and full nodes alike. It carries serialized wire.Envelopes to
// everyone on one libp2p pubsub topic per network, finds peers through a
// per-network Kademlia DHT seeded by a few bootstrap addresses, and offers a
// background unicast path to single peers.
//
// It is not the validator fast path (that is RainTree), it does not dedup
// envelopes across paths (the module does), and it does not restrict who may
// join: any node that speaks the protocol on the same NetworkID takes part.
//
// Messages are never lost silently: every drop that pubsub can report is
// counted in Stats, and Broadcast fails with ErrNoPeers instead of publishing
// into an empty topic.
package background
