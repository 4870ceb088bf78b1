// One side of the SharedQueue benchmarks (benchmark/queue.mjs), run as a child process or as a
// worker thread. Arguments: argv[2..] in a process, workerData.argv in a worker. Reports one
// message to its parent (process.send / parentPort.postMessage) and ends.
//   produce <queue> <kind> <n> [producerId]       put n values of a kind (str | u8 | obj | seq)
//   consume <queue> <kind> <n>                    get n values; first→last time, checksum
//   consume-all <queue>                           get 'seq' values until the queue ends
//   ipc-produce <kind> <n>                        the same n values through process.send
//   post-produce <kind> <n>                       the same n values through postMessage
//   ping <q1> <q2> <rounds> <spinMicros>          latency: put a stamp, wait for the echo
//   pong <q1> <q2> <rounds> <spinMicros>          latency: take a stamp, measure, echo
//   big-produce <queue> <n> <bytes>               reserve/fill/commit n payloads
//   big-consume <queue> <n>                       borrow/check/release n payloads
//   big-copy-produce / big-copy-consume           the same through put(Buffer) / get()
const { isMainThread, parentPort, workerData } = require('node:worker_threads')
const { SharedQueue } = require('../../index.js')

const argv = isMainThread ? process.argv.slice(2) : workerData.argv
const report = (value) => (isMainThread ? process.send(value) : parentPort.postMessage(value))
const now = () => process.hrtime.bigint()

const { value, Tally } = require('./queue-values.cjs')

const [role] = argv
if (role === 'produce') {
  const [, name, kind, n, producer = '0'] = argv
  const q = SharedQueue.open(name)
  for (let i = 0; i < Number(n); i++) q.put(value(kind, i, Number(producer)))
  q.close()
  report({ done: true })
} else if (role === 'consume') {
  const [, name, kind, n] = argv
  const q = SharedQueue.open(name)
  const tally = new Tally(kind)
  let first = 0n
  for (let i = 0; i < Number(n); i++) {
    const v = q.get()
    if (i === 0) first = now()
    tally.add(v)
  }
  const last = now()
  q.close()
  report({ ns: Number(last - first), sum: tally.sum, inOrder: tally.inOrder })
} else if (role === 'consume-all') {
  const [, name] = argv
  const q = SharedQueue.open(name)
  const seen = {}
  let first = 0n
  let last = 0n
  let count = 0
  let inOrder = true
  for (;;) {
    let v
    try {
      v = q.get()
    } catch (err) {
      if (err.code === 'ERR_SHM_QUEUE_ENDED') break
      throw err
    }
    last = now()
    if (count++ === 0) first = last
    const [p, i] = v.split(':').map(Number)
    const mine = (seen[p] ??= { count: 0, sum: 0, sumSq: 0, last: -1 })
    inOrder &&= i > mine.last
    mine.last = i
    mine.count++
    mine.sum += i
    mine.sumSq += i * i
  }
  q.close()
  report({ first: String(first), last: String(last), count, seen, inOrder })
} else if (role === 'ipc-produce') {
  const [, kind, n] = argv
  for (let i = 0; i < Number(n); i++) process.send(value(kind, i))
  process.send('done', () => process.disconnect())
} else if (role === 'post-produce') {
  const [, kind, n] = argv
  for (let i = 0; i < Number(n); i++) parentPort.postMessage(value(kind, i))
} else if (role === 'ping' || role === 'pong') {
  const [, a, b, rounds, spin] = argv
  const [mine, theirs] = role === 'ping' ? [SharedQueue.open(b), SharedQueue.open(a)] : [SharedQueue.open(a), SharedQueue.open(b)]
  mine.spinMicros = Number(spin)
  const samples = []
  const stamp = new BigInt64Array(1)
  const bytes = new Uint8Array(stamp.buffer)
  if (role === 'ping') {
    stamp[0] = now()
    theirs.put(bytes)
  }
  for (let r = 0; r < Number(rounds); r++) {
    const got = mine.get()
    const at = now()
    samples.push(Number(at - new BigInt64Array(got.buffer.slice(got.byteOffset, got.byteOffset + 8))[0]))
    stamp[0] = now()
    if (role === 'ping' && r === Number(rounds) - 1) break
    theirs.put(bytes)
  }
  mine.close()
  theirs.close()
  report(samples.slice(10))
} else if (role === 'big-produce') {
  const [, name, n, size] = argv
  const q = SharedQueue.open(name)
  for (let i = 0; i < Number(n); i++) {
    const slot = q.reserve(Number(size))
    slot.bytes.fill(i & 0xff)
    slot.commit()
  }
  q.close()
  report({ done: true })
} else if (role === 'big-consume') {
  const [, name, n] = argv
  const q = SharedQueue.open(name)
  let first = 0n
  let bytes = 0
  let ok = true
  for (let i = 0; i < Number(n); i++) {
    const slot = q.borrow()
    if (i === 0) first = now()
    const view = slot.bytes
    ok &&= view[0] === (i & 0xff) && view[view.length - 1] === (i & 0xff)
    bytes += view.length
    slot.release()
  }
  const last = now()
  q.close()
  report({ ns: Number(last - first), bytes, ok })
} else if (role === 'big-copy-produce') {
  const [, name, n, size] = argv
  const q = SharedQueue.open(name)
  const payload = Buffer.alloc(Number(size))
  for (let i = 0; i < Number(n); i++) {
    payload.fill(i & 0xff)
    q.put(payload)
  }
  q.close()
  report({ done: true })
} else if (role === 'big-copy-consume') {
  const [, name, n] = argv
  const q = SharedQueue.open(name)
  let first = 0n
  let bytes = 0
  let ok = true
  for (let i = 0; i < Number(n); i++) {
    const view = q.get()
    if (i === 0) first = now()
    ok &&= view[0] === (i & 0xff) && view[view.length - 1] === (i & 0xff)
    bytes += view.length
  }
  const last = now()
  q.close()
  report({ ns: Number(last - first), bytes, ok })
} else {
  throw new Error(`unknown role ${role}`)
}
