// SharedQueue figures (issue #16), each beside its peers measured in the same run:
// - throughput, 1 producer process → 1 consumer process, timed from the first message the
//   consumer receives to the last (start-up excluded), against child_process IPC with
//   serialization: 'advanced' and a worker's postMessage carrying the same values; every
//   receiver checks each value the same way (index, sum, order: peers/queue-values.cjs);
// - the v8.serialize + deserialize floor of a small object, in this process;
// - one-way latency (ping-pong of stamps) with the consumer sleeping (spinMicros 0) and
//   spinning, against the C shared-futex ping-pong of sync.mjs (passed in);
// - 1 MiB payloads through the borrowed-slot path (reserve/commit, borrow/release) and through
//   put/get (copies), against Buffer.fill of 1 MiB of warm shared memory (memset);
// - 4 producers × 4 consumers, 2+2 processes and 2+2 worker threads: exact delivery checked.
import { fork } from 'node:child_process'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import v8 from 'node:v8'
import { Worker } from 'node:worker_threads'

const require = createRequire(import.meta.url)
const { SharedMemory, SharedQueue } = require('../index.js')
const { Tally } = require('./peers/queue-values.cjs')
const here = fileURLToPath(new URL('.', import.meta.url))
const peer = join(here, 'peers', 'queue-peer.cjs')
const MiB = 1024 * 1024

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const percentile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))]

function child(argv, options = {}) {
  const proc = fork(peer, argv, { execArgv: [], ...options })
  const done = new Promise((resolve, reject) => {
    let result
    proc.on('message', (m) => (result = m))
    proc.on('error', reject)
    proc.on('exit', (code) => (code === 0 ? resolve(result) : reject(new Error(`queue peer ${argv[0]} exited with ${code}`))))
  })
  return done
}
function worker(argv) {
  const w = new Worker(peer, { workerData: { argv } })
  return new Promise((resolve, reject) => {
    let result
    w.on('message', (m) => (result = m))
    w.on('error', reject)
    w.on('exit', (code) => (code === 0 ? resolve(result) : reject(new Error(`queue worker ${argv[0]} exited with ${code}`))))
  })
}
function withQueue(options, body) {
  const q = SharedQueue.create({ track: false, ...options })
  return Promise.resolve()
    .then(() => body(q))
    .finally(() => {
      q.unlink()
      q.close()
    })
}

const expectedSum = (n) => (n * (n - 1)) / 2
function checked(what, got, n) {
  if (got.sum !== expectedSum(n) || !got.inOrder) throw new Error(`${what}: messages lost or out of order`)
  return n / (got.ns / 1e9)
}

/** msg/s, shmkit SharedQueue, one producer process → one consumer process. */
export async function shmkitRate(kind, n) {
  return withQueue({ capacity: 1024, maxMessageSize: 256 }, async (q) => {
    const consumer = child(['consume', q.name, kind, String(n)])
    const [got] = await Promise.all([consumer, child(['produce', q.name, kind, String(n)])])
    return checked(`shmkit ${kind}`, got, n)
  })
}

/** msg/s, child_process IPC (serialization 'advanced'), child → parent. */
export function ipcRate(kind, n) {
  return new Promise((resolve, reject) => {
    const proc = fork(peer, ['ipc-produce', kind, String(n)], { execArgv: [], serialization: 'advanced' })
    const tally = new Tally(kind)
    let first = 0n
    proc.on('message', (m) => {
      if (m === 'done') {
        const ns = Number(process.hrtime.bigint() - first)
        if (tally.count !== n) reject(new Error(`ipc ${kind}: ${tally.count} of ${n} messages`))
        else resolve(checked(`ipc ${kind}`, { ...tally, ns }, n))
        return
      }
      if (tally.count === 0) first = process.hrtime.bigint()
      tally.add(m)
    })
    proc.on('error', reject)
  })
}

/** msg/s, a worker thread's postMessage to this thread. */
function postRate(kind, n) {
  return new Promise((resolve, reject) => {
    const w = new Worker(peer, { workerData: { argv: ['post-produce', kind, String(n)] } })
    const tally = new Tally(kind)
    let first = 0n
    w.on('message', (m) => {
      if (tally.count === 0) first = process.hrtime.bigint()
      tally.add(m)
      if (tally.count === n) {
        resolve(checked(`postMessage ${kind}`, { ...tally, ns: Number(process.hrtime.bigint() - first) }, n))
        w.terminate()
      }
    })
    w.on('error', reject)
  })
}

/** ns per v8.serialize and per v8.deserialize of { i, tag } (median of rounds). */
function serializeFloor(iters, rounds) {
  const ser = []
  const de = []
  let sink = 0
  for (let r = 0; r < rounds; r++) {
    const bytes = []
    let t = process.hrtime.bigint()
    for (let i = 0; i < iters; i++) bytes.push(v8.serialize({ i, tag: 'job' }))
    ser.push(Number(process.hrtime.bigint() - t) / iters)
    t = process.hrtime.bigint()
    for (let i = 0; i < iters; i++) sink += v8.deserialize(bytes[i]).i
    de.push(Number(process.hrtime.bigint() - t) / iters)
  }
  if (sink < 0) console.log(sink)
  return { serializeNs: median(ser), deserializeNs: median(de) }
}

/** One-way latency (ns) of a stamp through a queue, ping-pong between two processes. */
async function latency(rounds, spinMicros) {
  const a = SharedQueue.create({ track: false, capacity: 2, maxMessageSize: 64 })
  const b = SharedQueue.create({ track: false, capacity: 2, maxMessageSize: 64 })
  try {
    const args = [a.name, b.name, String(rounds), String(spinMicros)]
    const [x, y] = await Promise.all([child(['ping', ...args]), child(['pong', ...args])])
    const sorted = [...x, ...y].sort((p, q) => p - q)
    return { p50Ns: percentile(sorted, 0.5), p99Ns: percentile(sorted, 0.99), samples: sorted.length }
  } finally {
    for (const q of [a, b]) {
      q.unlink()
      q.close()
    }
  }
}

/** GB/s of Buffer.fill over 1 MiB of warm shared memory (memset): the floor of the 1 MiB case. */
function fillBandwidth(iters) {
  const shm = SharedMemory.create(MiB, { track: false })
  try {
    const buf = shm.buf
    buf.fill(1)
    const t = process.hrtime.bigint()
    for (let i = 0; i < iters; i++) buf.fill(i & 0xff)
    return (iters * MiB) / Number(process.hrtime.bigint() - t)
  } finally {
    shm.close()
    shm.unlink()
  }
}

/** GB/s of 1 MiB payloads, producer process → consumer process, borrowed slots (or copies). */
async function bigRate(n, borrowed) {
  return withQueue({ capacity: 8, maxMessageSize: MiB }, async (q) => {
    if (borrowed) {
      const [got] = await Promise.all([child(['big-consume', q.name, String(n)]), child(['big-produce', q.name, String(n), String(MiB)])])
      if (!got.ok || got.bytes !== (n - 1) * MiB + MiB) throw new Error('1 MiB borrowed: wrong bytes')
      return (got.bytes * ((n - 1) / n)) / got.ns
    }
    const [got] = await Promise.all([child(['big-copy-consume', q.name, String(n)]), child(['big-copy-produce', q.name, String(n), String(MiB)])])
    if (!got.ok) throw new Error('1 MiB copied: wrong bytes')
    return (got.bytes * ((n - 1) / n)) / got.ns
  })
}

/** 4 producers × 4 consumers (2 processes + 2 workers each side); exact delivery checked. */
export async function manyToMany(perProducer) {
  return withQueue({ capacity: 1024, maxMessageSize: 64 }, async (q) => {
    const consumers = [0, 1, 2, 3].map((c) => (c < 2 ? child : worker)(['consume-all', q.name]))
    const producers = [0, 1, 2, 3].map((p) => (p % 2 ? child : worker)(['produce', q.name, 'seq', String(perProducer), String(p)]))
    await Promise.all(producers)
    q.end()
    const got = await Promise.all(consumers)
    let count = 0
    let inOrder = true
    const totals = {}
    for (const r of got) {
      count += r.count
      inOrder &&= r.inOrder
      for (const [p, s] of Object.entries(r.seen)) {
        const t = (totals[p] ??= { count: 0, sum: 0, sumSq: 0 })
        t.count += s.count
        t.sum += s.sum
        t.sumSq += s.sumSq
      }
    }
    const n = perProducer
    const sumSq = ((n - 1) * n * (2 * n - 1)) / 6
    const exact = [0, 1, 2, 3].every((p) => totals[p]?.count === n && totals[p].sum === expectedSum(n) && totals[p].sumSq === sumSq)
    const busy = got.filter((r) => r.count > 0)
    const first = busy.reduce((m, r) => (BigInt(r.first) < m ? BigInt(r.first) : m), BigInt(busy[0].first))
    const last = busy.reduce((m, r) => (BigInt(r.last) > m ? BigInt(r.last) : m), 0n)
    return { rate: count / (Number(last - first) / 1e9), exact, inOrder, count, lost: q.lost }
  })
}

/** Every SharedQueue figure; `cFutex` is sync.mjs's C ping-pong from the same run. */
export async function queueBench({ quick, cFutex }) {
  const n = quick ? 5000 : 100_000
  const kinds = ['str', 'u8', 'obj']
  const rates = {}
  for (const kind of kinds) {
    rates[kind] = {
      shmkit: await shmkitRate(kind, n),
      ipc: await ipcRate(kind, n),
      postMessage: await postRate(kind, n),
    }
  }
  const floor = serializeFloor(quick ? 2000 : 20000, quick ? 3 : 7)
  const floorRate = 1e9 / (floor.serializeNs + floor.deserializeNs)
  const rounds = quick ? 1000 : 10000
  const sleeping = await latency(rounds, 0)
  const spinning = await latency(rounds, 1e6)
  const bigN = quick ? 50 : 1000
  const fill = fillBandwidth(quick ? 200 : 2000)
  const borrowed = typeof SharedQueue.prototype.reserve === 'function' ? await bigRate(bigN, true) : null
  const copied = await bigRate(bigN, false)
  const mixed = await manyToMany(quick ? 2000 : 25_000)
  if (!mixed.exact || !mixed.inOrder) throw new Error('4×4: messages lost, duplicated or out of order')
  return { messages: n, rates, floor: { ...floor, rate: floorRate }, latency: { sleeping, spinning, cFutex }, big: { fillGBs: fill, borrowedGBs: borrowed, copiedGBs: copied, payloads: bigN }, mixed }
}

/** Prints the tables and returns the targets ([what, value, met]). */
export function printQueue(q, fmt) {
  const names = { str: 'short string (48 B)', u8: 'Uint8Array (32 B)', obj: 'object { i, tag }' }
  const k = (r) => `${(r / 1000).toFixed(0)} k/s`
  console.log(`\nSharedQueue throughput, 1 producer process → 1 consumer process, ${q.messages} messages, first received → last`)
  console.table(
    Object.entries(q.rates).map(([kind, r]) => ({
      message: names[kind],
      shmkit: k(r.shmkit),
      "child_process IPC 'advanced'": k(r.ipc),
      'worker postMessage (in-process)': k(r.postMessage),
      'shmkit / IPC': `${(r.shmkit / r.ipc).toFixed(1)}×`,
      'shmkit / postMessage': `${(r.shmkit / r.postMessage).toFixed(1)}×`,
    })),
  )
  console.log(
    `v8.serialize ${fmt(q.floor.serializeNs)} + deserialize ${fmt(q.floor.deserializeNs)} per { i, tag }: floor ${k(q.floor.rate)}; ` +
      `shmkit objects reach ${((q.rates.obj.shmkit / q.floor.rate) * 100).toFixed(0)}% of it`,
  )
  console.log('\nSharedQueue one-way latency between two processes (ping-pong of stamps)')
  const lat = q.latency
  console.table([
    { way: 'shmkit get(), consumer sleeping (spinMicros 0)', p50: fmt(lat.sleeping.p50Ns), p99: fmt(lat.sleeping.p99Ns), 'p50 vs C': `${(lat.sleeping.p50Ns / lat.cFutex.p50Ns).toFixed(2)}×` },
    { way: 'shmkit get(), consumer spinning', p50: fmt(lat.spinning.p50Ns), p99: fmt(lat.spinning.p99Ns), 'p50 vs C': `${(lat.spinning.p50Ns / lat.cFutex.p50Ns).toFixed(2)}×` },
    { way: 'C: shared futex ping-pong (sync.mjs)', p50: fmt(lat.cFutex.p50Ns), p99: fmt(lat.cFutex.p99Ns), 'p50 vs C': '1.00×' },
  ])
  const gb = (x) => (x == null ? '—' : `${x.toFixed(2)} GB/s`)
  console.log(`\n1 MiB payloads, producer process → consumer process (${q.big.payloads} payloads)`)
  console.table([
    { way: 'shmkit reserve/fill/commit → borrow/release', bandwidth: gb(q.big.borrowedGBs), 'vs memset': q.big.borrowedGBs == null ? '—' : `${((q.big.borrowedGBs / q.big.fillGBs) * 100).toFixed(0)}%` },
    { way: 'shmkit put(Buffer) → get() (copies)', bandwidth: gb(q.big.copiedGBs), 'vs memset': `${((q.big.copiedGBs / q.big.fillGBs) * 100).toFixed(0)}%` },
    { way: 'Buffer.fill of 1 MiB warm shared memory (memset)', bandwidth: gb(q.big.fillGBs), 'vs memset': '100%' },
  ])
  console.log(
    `\n4 producers × 4 consumers (2 processes + 2 workers each side): ${q.mixed.count} messages, ` +
      `${k(q.mixed.rate)} aggregate; exact delivery ${q.mixed.exact ? 'checked' : 'FAILED'}, per-producer order ${q.mixed.inOrder ? 'checked' : 'FAILED'}`,
  )
  const targets = [
    ['SharedQueue short strings ≥ 20× child_process IPC', q.rates.str.shmkit / q.rates.str.ipc, (r) => r >= 20],
    ['SharedQueue Uint8Array ≥ 20× child_process IPC', q.rates.u8.shmkit / q.rates.u8.ipc, (r) => r >= 20],
    ['SharedQueue objects ≥ 3× child_process IPC', q.rates.obj.shmkit / q.rates.obj.ipc, (r) => r >= 3],
    ['SharedQueue sleeping get p50 ≤ 1.5× the C futex ping-pong', lat.sleeping.p50Ns / lat.cFutex.p50Ns, (r) => r <= 1.5],
    ['SharedQueue spinning get p50 ≤ 1 µs (µs)', lat.spinning.p50Ns / 1000, (r) => r <= 1],
  ]
  if (q.big.borrowedGBs != null) targets.push(['SharedQueue 1 MiB borrowed ≥ 50% of memset (fraction)', q.big.borrowedGBs / q.big.fillGBs, (r) => r >= 0.5])
  return targets
}
