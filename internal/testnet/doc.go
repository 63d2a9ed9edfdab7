// Package testnet writes the home directories of a whole network at once,
// for `rainp2p testnet`: one key per node, one shared genesis naming the
// validators at their dialable addresses, and configs whose bootstrap lists
// point full nodes at validators. The homes can be copied to other machines
// and started there with `rainp2p node --home`.
//
// It only writes files; running the nodes is someone else's job (an
// operator, or package localnet).
package testnet
