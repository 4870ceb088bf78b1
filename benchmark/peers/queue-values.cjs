// The values the SharedQueue benchmarks carry, and the check every receiver makes of each one
// (shmkit's consumer, the child_process IPC parent and the postMessage parent alike, so that
// no peer is timed doing less work per message than another).
const PAD = 'abcdefghijklmnopqrstuvwxyz0123456789'
const U8 = new Uint8Array(32).fill(7)
const STR_INDEX_AT = 'message '.length

/** The i-th value of a kind: a short string (≤ 64 bytes), a 32-byte Uint8Array, an object. */
function value(kind, i, producer = 0) {
  if (kind === 'str') return `message ${i} ${PAD}`.slice(0, 48)
  if (kind === 'u8') {
    const bytes = U8.slice()
    new DataView(bytes.buffer).setUint32(0, i, true)
    return bytes
  }
  if (kind === 'obj') return { i, tag: 'job' }
  if (kind === 'seq') return `${producer}:${i}`
  throw new Error(`no kind ${kind}`)
}

/** The index a received value carries (to check that nothing was lost or reordered). */
function indexOf(kind, v) {
  if (kind === 'str') return Number(v.slice(STR_INDEX_AT, v.indexOf(' ', STR_INDEX_AT)))
  if (kind === 'u8') return new DataView(v.buffer, v.byteOffset, v.byteLength).getUint32(0, true)
  if (kind === 'obj') return v.i
  throw new Error(`no kind ${kind}`)
}

/** Counts received values of one kind: how many, the sum of their indexes, all in order. */
class Tally {
  constructor(kind) {
    this.kind = kind
    this.count = 0
    this.sum = 0
    this.inOrder = true
  }
  add(v) {
    const index = indexOf(this.kind, v)
    this.inOrder &&= index === this.count
    this.sum += index
    this.count++
  }
}

module.exports = { value, indexOf, Tally }
