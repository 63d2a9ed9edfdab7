// The rainp2p envelope, written from docs/PROTOCOL.md alone (sections 1,
// 3 and 4): what a stock gossipsub node needs to take part as a full
// node. Nothing here comes from rainp2p's Go code; vectors.mjs checks it
// against the document's test vectors.

import { createHash, getRandomValues } from 'node:crypto'
import { publicKeyFromProtobuf, publicKeyToProtobuf } from '@libp2p/crypto/keys'

const utf8 = new TextEncoder()
const strictUTF8 = new TextDecoder('utf-8', { fatal: true })

/** Section 8: the default size limit of an envelope. */
export const maxMessageSize = 4 * 1024 * 1024
/** Section 4: pubsub's RPC limit every node must accept. */
export const maxRPCSize = maxMessageSize + 256 + 4096
/** Section 3.2, rule 6 (defaults). */
export const replayWindowMs = 2 * 60 * 1000
export const clockSkewMs = 10 * 1000

export const stringValueType = 'type.googleapis.com/google.protobuf.StringValue'

/** Section 2: the gossip topic of network net. */
export const topicName = (net) => `/rainp2p/${net}/background/1.0.0`

// --- protobuf, only as much as the envelope needs --------------------

function concat (...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

function varint (n) {
  let v = BigInt.asUintN(64, BigInt(n))
  const out = []
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80)
    v >>= 7n
  }
  out.push(Number(v))
  return Uint8Array.from(out)
}

const bytesField = (num, b) => concat(varint((num << 3) | 2), varint(b.length), b)
const varintField = (num, v) => concat(varint(num << 3), varint(v))

function readVarint (b, at) {
  let v = 0n
  for (let i = 0; i < 10; i++) {
    if (at + i >= b.length) throw new Error('truncated varint')
    const x = b[at + i]
    v |= BigInt(x & 0x7f) << BigInt(7 * i)
    if (x < 0x80) return [BigInt.asUintN(64, v), i + 1]
  }
  throw new Error('varint longer than 10 bytes')
}

// fields parses b strictly (rule 2): known fields, given as
// {number: 'varint' | 'bytes'}, must have that wire type and occur once;
// unknown fields are skipped.
function fields (b, known) {
  const got = {}
  let at = 0
  while (at < b.length) {
    const [tag, n] = readVarint(b, at)
    at += n
    const num = Number(tag >> 3n)
    const type = Number(tag & 7n)
    if (num < 1 || num > 536870911) throw new Error(`field number ${num} out of range`)
    let value
    switch (type) {
      case 0: {
        const [v, m] = readVarint(b, at)
        at += m
        value = v
        break
      }
      case 1: at += 8; break
      case 2: {
        const [len, m] = readVarint(b, at)
        at += m
        if (len > BigInt(b.length - at)) throw new Error('truncated field')
        value = b.subarray(at, at + Number(len))
        at += Number(len)
        break
      }
      case 5: at += 4; break
      default: throw new Error(`wire type ${type}`)
    }
    if (at > b.length) throw new Error('truncated field')
    const want = known[num]
    if (want === undefined) continue
    if ((want === 'varint') !== (type === 0) || (want === 'bytes' && type !== 2)) {
      throw new Error(`field ${num} has wire type ${type}`)
    }
    if (num in got) throw new Error(`field ${num} repeated`)
    got[num] = value
  }
  return got
}

// --- section 1: addresses ----------------------------------------------

const sha256 = (...parts) => {
  const h = createHash('sha256')
  for (const p of parts) h.update(p)
  return new Uint8Array(h.digest())
}

/** The 20-byte address of a libp2p public key. */
export function address (publicKey) {
  const b = publicKey.type === 'Ed25519' ? publicKey.raw : publicKeyToProtobuf(publicKey)
  return sha256(b).subarray(0, 20)
}

// --- section 3: the envelope -------------------------------------------

function u64be (n) {
  const b = new Uint8Array(8)
  new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, BigInt(n)))
  return b
}
const lp = (b) => concat(u64be(b.length), b)

/** Section 3.1: the signing string of envelope env on network net. */
export function signingString (net, env) {
  // A parsed envelope signs its type_url's bytes as they came.
  const typeUrl = env.typeUrlBytes ?? utf8.encode(env.typeUrl)
  return concat(lp(utf8.encode('rainp2p/envelope/v1')), lp(utf8.encode(net)),
    lp(typeUrl), lp(env.value), u64be(env.nonce), u64be(env.createdAt),
    lp(env.origin), lp(env.recipient))
}

/** Section 3.1: the message ID, SHA-256 of the signing string. */
export const messageId = (net, env) => sha256(signingString(net, env))

/** google.protobuf.Any, fields in number order, empty ones left out. */
export function encodeAny (typeUrl, value) {
  const parts = [bytesField(1, utf8.encode(typeUrl))]
  if (value.length > 0) parts.push(bytesField(2, value))
  return concat(...parts)
}

/** google.protobuf.StringValue{value: s}. */
export function stringValue (s) {
  const b = utf8.encode(s)
  return b.length > 0 ? bytesField(1, b) : new Uint8Array()
}

/** The text of a StringValue. */
export function stringOf (value) {
  const f = fields(value, { 1: 'bytes' })
  return f[1] === undefined ? '' : strictUTF8.decode(f[1])
}

/** The serialized envelope, fields in number order. */
export function encodeEnvelope (env) {
  const parts = [bytesField(1, encodeAny(env.typeUrl, env.value)), varintField(2, env.nonce),
    bytesField(3, env.origin), varintField(4, env.createdAt), bytesField(5, env.signature)]
  if (env.recipient.length > 0) parts.push(bytesField(6, env.recipient))
  return concat(...parts)
}

function randomNonce () {
  for (;;) {
    const n = new DataView(getRandomValues(new Uint8Array(8)).buffer).getBigUint64(0)
    if (n !== 0n) return n
  }
}

/**
 * Seals a broadcast (or, with recipient, a direct message) of content
 * typeUrl/value with privateKey: returns the envelope, its message ID and
 * its serialized form.
 */
export async function seal (net, privateKey, typeUrl, value, { nonce, createdAt, recipient } = {}) {
  const env = {
    typeUrl,
    value,
    nonce: nonce ?? randomNonce(),
    createdAt: BigInt(createdAt ?? Date.now()),
    origin: publicKeyToProtobuf(privateKey.publicKey),
    recipient: recipient ?? new Uint8Array()
  }
  const id = messageId(net, env)
  env.signature = await privateKey.sign(id)
  return { env, id, raw: encodeEnvelope(env) }
}

/** Parses an envelope strictly (rule 2), without checking anything else. */
export function parseEnvelope (raw) {
  const f = fields(raw, { 1: 'bytes', 2: 'varint', 3: 'bytes', 4: 'varint', 5: 'bytes', 6: 'bytes' })
  if (f[1] === undefined) throw new Error('no content')
  const any = fields(f[1], { 1: 'bytes', 2: 'bytes' })
  return {
    typeUrlBytes: any[1] ?? new Uint8Array(),
    typeUrl: null,
    value: any[2] ?? new Uint8Array(),
    nonce: f[2] ?? 0n,
    origin: f[3] ?? new Uint8Array(),
    createdAt: BigInt.asIntN(64, f[4] ?? 0n),
    signature: f[5] ?? new Uint8Array(),
    recipient: f[6] ?? new Uint8Array()
  }
}

/** An envelope outside the replay window (rule 6): refused, not invalid. */
export class StaleError extends Error {}

/**
 * Opens an envelope: rules 1 to 6 of section 3.2. With self (this node's
 * 20-byte address) it is a direct message that must be addressed to it;
 * without, a broadcast that must carry no recipient. It returns the
 * envelope, its message ID and its origin's address, throws StaleError
 * outside the replay window, and any other error for an invalid envelope.
 */
export async function openEnvelope (net, raw, { self, now = Date.now() } = {}) {
  if (raw.length === 0 || raw.length > maxMessageSize) throw new Error(`envelope of ${raw.length} bytes`)
  const env = parseEnvelope(raw)
  env.typeUrl = strictUTF8.decode(env.typeUrlBytes)
  if (env.nonce === 0n) throw new Error('nonce 0')
  if (env.origin.length === 0 || env.signature.length === 0) throw new Error('unsigned')
  if (env.createdAt <= 0n) throw new Error('created_at not positive')
  if (env.recipient.length !== 0 && (env.recipient.length !== 20 || env.recipient.every((b) => b === 0))) {
    throw new Error('recipient is not an address')
  }
  if (self === undefined ? env.recipient.length !== 0 : !equal(env.recipient, self)) {
    throw new Error(self === undefined ? 'a broadcast with a recipient' : 'misdirected')
  }
  const origin = publicKeyFromProtobuf(env.origin)
  const id = messageId(net, env)
  if (!(await origin.verify(id, env.signature))) throw new Error('bad signature')
  const at = Number(env.createdAt)
  if (at < now - replayWindowMs - clockSkewMs || at > now + clockSkewMs) throw new StaleError('outside the replay window')
  return { env, id, from: address(origin) }
}

/** openEnvelope for a broadcast received on gossip. */
export const openBroadcast = (net, raw, now = Date.now()) => openEnvelope(net, raw, { now })

const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i])

// --- section 4: background gossip --------------------------------------

/** A BackgroundMessage carrying only data: what goes on the topic. */
export const encodeBackground = (raw) => bytesField(1, raw)

// --- section 5: unicast framing -----------------------------------------

/** Section 2: the background direct-send protocol of network net. */
export const unicastProtocol = (net) => `/rainp2p/${net}/background/unicast/1.0.0`

/** A direct send's frame: uvarint(len) || BackgroundMessage{data: raw}. */
export function unicastFrame (raw) {
  const payload = encodeBackground(raw)
  return concat(varint(payload.length), payload)
}

/**
 * Splits the bytes read so far on a unicast stream into whole frames:
 * returns them and the bytes of the frame still to come. A frame longer
 * than the limit (maxMessageSize + 256) is an error.
 */
export function splitFrames (buf) {
  const frames = []
  for (;;) {
    let len
    let n
    try {
      [len, n] = readVarint(buf, 0)
    } catch (err) {
      if (buf.length >= 10) throw err // no length is that long
      return { frames, rest: buf } // the length itself is not whole yet
    }
    if (len === 0n || len > BigInt(maxMessageSize + 256)) throw new Error(`frame of ${len} bytes`)
    if (buf.length - n < Number(len)) return { frames, rest: buf }
    frames.push(buf.subarray(n, n + Number(len)))
    buf = buf.subarray(n + Number(len))
  }
}

export { concat }

/** The envelope in a BackgroundMessage (fields 2 and 3 ignored). */
export function backgroundEnvelope (data) {
  const f = fields(data, { 1: 'bytes' })
  if (f[1] === undefined) throw new Error('no data')
  return f[1]
}

/** Section 4: the gossip message ID (msgIdFn) of pubsub data. */
export function gossipId (net, data) {
  try {
    const env = parseEnvelope(backgroundEnvelope(data))
    return sha256(messageId(net, env), env.signature)
  } catch {
    return sha256(utf8.encode('rainp2p/invalid-frame/v1'), data)
  }
}

export const hex = (b) => Buffer.from(b).toString('hex')
export const unhex = (s) => new Uint8Array(Buffer.from(s, 'hex'))
