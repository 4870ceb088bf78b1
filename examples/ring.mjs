// A producer process and a consumer process share a ring of Float64 records, guarded by a
// ShmLock and paced with wait/notify: no pipe carries data, and neither side spins.
//
//   node examples/ring.mjs
//
// Layout of the segment (all offsets in bytes):
//   0  ShmLock                4  head (records written, Uint32)   8  tail (records read)
//   12 seq: bumped on every change; both sides sleep on it      16 done flag
//   24 CAPACITY records of [time (ms), value] as two Float64s
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'

import { SharedMemory, ShmLock } from 'shmkit'

const CAPACITY = 1024
const RECORDS = 100_000
const LOCK = 0
const SEQ = 12
const RECORDS_AT = 24

function attachRing(shm) {
  return {
    lock: ShmLock.open(shm, LOCK),
    header: new Uint32Array(shm.buffer, 0, 6), // [lock, head, tail, seq, done, pad]
    records: new Float64Array(shm.buffer, RECORDS_AT, CAPACITY * 2),
  }
}

/** Runs `step` under the lock; `step` returns true when it changed the ring (then waiters wake). */
function underLock(shm, ring, step) {
  for (;;) {
    const taken = ring.lock.lock()
    if (taken === 'owner-died') throw new Error('the other side died mid-update')
    const seq = Atomics.load(ring.header, 3)
    let changed
    try {
      changed = step()
      if (changed) Atomics.add(ring.header, 3, 1)
    } finally {
      ring.lock.unlock()
    }
    if (changed !== undefined && changed !== false) {
      shm.notify(SEQ)
      return changed
    }
    shm.wait(SEQ, seq) // nothing to do yet: sleep until the other side changes something
  }
}

function produce(shm, ring) {
  for (let i = 0; i < RECORDS; i++) {
    underLock(shm, ring, () => {
      const [, head, tail] = ring.header
      if (head - tail === CAPACITY) return false // full
      const slot = (head % CAPACITY) * 2
      ring.records[slot] = performance.timeOrigin + performance.now()
      ring.records[slot + 1] = i * 0.5
      ring.header[1] = head + 1
      return true
    })
  }
  underLock(shm, ring, () => (ring.header[4] = 1))
}

function consume(shm, ring) {
  let count = 0
  let sum = 0
  let lagMs = 0
  for (;;) {
    const record = underLock(shm, ring, () => {
      const [, head, tail, , done] = ring.header
      if (head === tail) return done ? 'done' : false // empty
      const slot = (tail % CAPACITY) * 2
      const taken = [ring.records[slot], ring.records[slot + 1]]
      ring.header[2] = tail + 1
      return taken
    })
    if (record === 'done') return { count, sum, meanLagMs: lagMs / count }
    count += 1
    sum += record[1]
    lagMs += performance.timeOrigin + performance.now() - record[0]
  }
}

if (process.argv[2] === 'consumer') {
  const shm = SharedMemory.open(process.argv[3])
  const ring = attachRing(shm)
  process.send(consume(shm, ring))
  ring.lock.close()
  shm.close()
} else {
  const shm = SharedMemory.create(RECORDS_AT + CAPACITY * 16)
  try {
    ShmLock.create(shm, LOCK).close()
    const ring = attachRing(shm)
    const consumer = fork(fileURLToPath(import.meta.url), ['consumer', shm.name])
    const report = new Promise((resolve) => consumer.once('message', resolve))
    const started = performance.now()
    produce(shm, ring)
    const { count, sum, meanLagMs } = await report
    const ms = performance.now() - started
    const expected = (0.5 * (RECORDS - 1) * RECORDS) / 2
    console.log(`consumer read ${count} records (sum ${sum}, expected ${expected}) in ${ms.toFixed(0)} ms`)
    console.log(`${((count / ms) * 1000).toFixed(0)} records/s, mean producer→consumer lag ${meanLagMs.toFixed(3)} ms`)
    if (count !== RECORDS || sum !== expected) throw new Error('records were lost or corrupted')
    ring.lock.close()
  } finally {
    shm.close()
    shm.unlink()
  }
}
