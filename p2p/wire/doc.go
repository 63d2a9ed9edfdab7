// Package wire defines every message rainp2p puts on the network (in
// wire.proto) and the small helpers that build, encode and check them.
//
// It is for framing application envelopes inside router messages; it is not
// for transport concerns such as length prefixes (see package unicast).
//
// docs/PROTOCOL.md specifies the wire format, with test vectors that
// TestProtocolDocVectors recomputes; a change to the wire updates it in
// the same commit.
//
// Regenerate wire.pb.go after editing wire.proto with `make proto` (or
// `go generate ./p2p/wire`), which needs protoc 3.21+ and protoc-gen-go at the
// version pinned in go.mod.
package wire

//go:generate protoc --proto_path=. --go_out=. --go_opt=paths=source_relative wire.proto
