// Recomputes the test vectors of docs/PROTOCOL.md, section 9, with
// rainp2p.mjs (written from the document alone) and compares them with
// the document's. Usage: node vectors.mjs path/to/PROTOCOL.md
// It prints one JSON line, {"ok": true, "checked": [...]} or the
// mismatches, and exits 1 on any.

import { readFileSync } from 'node:fs'
import { generateKeyPairFromSeed, publicKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import {
  address, encodeAny, encodeBackground, gossipId, hex, messageId, openBroadcast, seal,
  signingString, stringValue, stringValueType, unhex
} from './rainp2p.mjs'

const doc = readFileSync(process.argv[2], 'utf8')
const block = doc.split('<!-- vectors:begin -->')[1]?.split('<!-- vectors:end -->')[0]
if (!block) {
  console.log(JSON.stringify({ ok: false, error: 'no vectors block' }))
  process.exit(1)
}
const want = Object.fromEntries(block.split('\n').map((l) => l.match(/^([a-z_]+): ([0-9A-Za-z]+)$/)).filter(Boolean).map((m) => [m[1], m[2]]))

const net = 'rainp2p-localnet'
const key = await generateKeyPairFromSeed('Ed25519', unhex(want.seed))
const content = { typeUrl: stringValueType, value: stringValue('hello') }
const fixed = { nonce: 0x0102030405060708n, createdAt: 1767225600000n }
const broadcast = await seal(net, key, content.typeUrl, content.value, fixed)
const unicast = await seal(net, key, content.typeUrl, content.value, { ...fixed, recipient: unhex(want.unicast_recipient) })
const frame = encodeBackground(broadcast.raw)

const got = {
  origin: hex(publicKeyToProtobuf(key.publicKey)),
  address: hex(address(key.publicKey)),
  peer_id: null, // compared as a string below
  content: hex(encodeAny(content.typeUrl, content.value)),
  signing_string: hex(signingString(net, broadcast.env)),
  message_id: hex(broadcast.id),
  signature: hex(broadcast.env.signature),
  envelope: hex(broadcast.raw),
  gossip_id: hex(gossipId(net, frame)),
  background_frame: hex(frame),
  unicast_message_id: hex(unicast.id),
  unicast_envelope: hex(unicast.raw)
}
const mismatches = []
for (const [name, value] of Object.entries(got)) {
  if (name === 'peer_id') continue
  if (value !== want[name]) mismatches.push({ name, want: want[name], got: value })
}
const peerId = peerIdFromPrivateKey(key).toString()
if (peerId !== want.peer_id) mismatches.push({ name: 'peer_id', want: want.peer_id, got: peerId })

// The document's envelope opens (signature, rules) at its own time.
try {
  await openBroadcast(net, unhex(want.envelope), Number(fixed.createdAt))
} catch (err) {
  mismatches.push({ name: 'envelope opens', error: String(err) })
}
// And a flipped bit of its signature does not.
const forged = unhex(want.envelope)
forged[forged.length - 1] ^= 1
try {
  await openBroadcast(net, forged, Number(fixed.createdAt))
  mismatches.push({ name: 'a forged signature opens' })
} catch {}

const checked = [...Object.keys(got), 'envelope opens', 'a forged signature does not']
console.log(JSON.stringify(mismatches.length === 0 ? { ok: true, checked } : { ok: false, mismatches }))
process.exit(mismatches.length === 0 ? 0 : 1)
