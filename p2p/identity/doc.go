// Package identity holds who a node is: its key (ed25519 for every
// validator and every key rainp2p creates), the key file that stores it, and
// the 20-byte Address derived from the public key, with the conversions
// between addresses, public keys and libp2p peer IDs. Full nodes of other
// implementations may use other libp2p key types; they get a well-defined
// address too (see AddressFromPublicKey), never the zero address.
//
// It is not a registry of other nodes; the validator set (package
// validators) and the module's address book play that role.
package identity
