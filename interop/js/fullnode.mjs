// A stock js-libp2p node (libp2p v2, @chainsafe/libp2p-gossipsub) taking
// part in a rainp2p network as a full node, with only what
// docs/PROTOCOL.md asks of any implementation (sections 1 to 4): TCP,
// Noise, yamux, identify, gossipsub on the network's topic with no pubsub
// signature, the gossip message ID, the size limit, and the envelope
// (rainp2p.mjs). Nothing else of rainp2p runs in it.
//
//   node fullnode.mjs --network NET --connect MULTIADDR [--connect ...]
//
// It writes one JSON object per line to stdout: {"event": "ready", ...}
// once a peer it dialled has joined the topic, {"event": "message", ...}
// for each valid broadcast it receives, {"event": "direct", ...} for each
// valid direct message (section 5), {"event": "published", ...} and
// {"event": "sent", ...} for what it sends, {"event": "error", ...}. It
// reads commands, one JSON object per line, on stdin: {"publish": "text"}
// broadcasts a google.protobuf.StringValue, {"send": {"to": PEER_ID,
// "text": "text"}} sends one to that peer's address; {"quit": true}, or
// the end of stdin, stops it.

import { parseArgs } from 'node:util'
import { createInterface } from 'node:readline'
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { gossipsub } from '@chainsafe/libp2p-gossipsub'
import { TopicValidatorResult } from '@libp2p/interface'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import {
  StaleError, address, backgroundEnvelope, concat, encodeBackground, gossipId, hex, maxRPCSize,
  openBroadcast, openEnvelope, seal, splitFrames, stringOf, stringValue, stringValueType, topicName,
  unicastFrame, unicastProtocol
} from './rainp2p.mjs'

// Node.js 20 lacks Promise.withResolvers (22 has it), which a package
// libp2p v2 depends on calls.
Promise.withResolvers ??= function () {
  let resolve, reject
  const promise = new this((res, rej) => { resolve = res; reject = rej })
  return { promise, resolve, reject }
}

const { values: args } = parseArgs({
  options: { network: { type: 'string' }, connect: { type: 'string', multiple: true, default: [] } }
})
if (!args.network) {
  console.error('usage: node fullnode.mjs --network NET --connect MULTIADDR')
  process.exit(2)
}
const net = args.network
const topic = topicName(net)
const emit = (event) => process.stdout.write(JSON.stringify(event) + '\n')
const textOf = (env) => env.typeUrl === stringValueType ? stringOf(env.value) : null

const key = await generateKeyPair('Ed25519')
const node = await createLibp2p({
  privateKey: key,
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: {
    identify: identify(),
    pubsub: gossipsub({
      globalSignaturePolicy: 'StrictNoSign',
      msgIdFn: (msg) => gossipId(net, msg.data),
      maxInboundDataLength: maxRPCSize
    })
  }
})
const pubsub = node.services.pubsub

// Section 4, validation: reject what breaks rules 1 to 5, ignore what is
// outside the replay window.
const opened = new Map() // gossip ID (hex) -> what openBroadcast gave
pubsub.topicValidators.set(topic, async (_peer, msg) => {
  try {
    const o = await openBroadcast(net, backgroundEnvelope(msg.data))
    opened.set(hex(gossipId(net, msg.data)), o)
    return TopicValidatorResult.Accept
  } catch (err) {
    return err instanceof StaleError ? TopicValidatorResult.Ignore : TopicValidatorResult.Reject
  }
})
pubsub.addEventListener('message', (evt) => {
  if (evt.detail.topic !== topic) return
  const id = hex(gossipId(net, evt.detail.data))
  const o = opened.get(id)
  opened.delete(id)
  if (!o) return
  emit({ event: 'message', id: hex(o.id), nonce: o.env.nonce.toString(), from: hex(o.from), text: textOf(o.env) })
})
pubsub.subscribe(topic)

// Section 5: direct sends to this node, one frame after another on
// streams the sender opens; this node never writes on them.
const self = address(key.publicKey)
await node.handle(unicastProtocol(net), async ({ stream }) => {
  let buf = new Uint8Array()
  try {
    for await (const chunk of stream.source) {
      const { frames, rest } = splitFrames(concat(buf, chunk.subarray()))
      buf = rest
      for (const frame of frames) {
        const o = await openEnvelope(net, backgroundEnvelope(frame), { self })
        emit({ event: 'direct', id: hex(o.id), nonce: o.env.nonce.toString(), from: hex(o.from), text: textOf(o.env) })
      }
    }
  } catch (err) {
    emit({ event: 'error', error: `direct send: ${err.message}` })
    stream.abort(err)
  }
})

for (const addr of args.connect) {
  try {
    await node.dial(multiaddr(addr))
  } catch (err) {
    emit({ event: 'error', error: `dialling ${addr}: ${err.message}` })
  }
}
// Ready once a peer we know has joined the topic: a publication before
// that would reach nobody.
while (pubsub.getSubscribers(topic).length === 0) {
  await new Promise((resolve) => setTimeout(resolve, 50))
}
emit({ event: 'ready', peer_id: node.peerId.toString(), address: hex(address(key.publicKey)) })

const stop = async () => {
  await node.stop()
  process.exit(0)
}
const lines = createInterface({ input: process.stdin })
lines.on('close', stop)
for await (const line of lines) {
  let cmd
  try {
    cmd = JSON.parse(line)
  } catch {
    emit({ event: 'error', error: `not JSON: ${line}` })
    continue
  }
  if (cmd.quit) break
  if (cmd.send && typeof cmd.send.to === 'string' && typeof cmd.send.text === 'string') {
    try {
      const to = peerIdFromString(cmd.send.to)
      const { env, id, raw } = await seal(net, key, stringValueType, stringValue(cmd.send.text), { recipient: address(to.publicKey) })
      const stream = await node.dialProtocol(to, unicastProtocol(net))
      await stream.sink([unicastFrame(raw)]) // and closes the write side
      emit({ event: 'sent', id: hex(id), nonce: env.nonce.toString() })
    } catch (err) {
      emit({ event: 'error', error: `sending: ${err.message}` })
    }
  }
  if (typeof cmd.publish === 'string') {
    try {
      const { env, id, raw } = await seal(net, key, stringValueType, stringValue(cmd.publish))
      await pubsub.publish(topic, encodeBackground(raw))
      emit({ event: 'published', id: hex(id), nonce: env.nonce.toString() })
    } catch (err) {
      emit({ event: 'error', error: `publishing: ${err.message}` })
    }
  }
}
await stop()
