// Cross-process synchronisation figures: uncontended ShmLock lock+unlock, and one-way wake-up
// latency (median, p99) of shmkit wait/notify against a C futex ping-pong and a child_process
// IPC message, all between two processes on this machine.
import { execFileSync, fork } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const { SharedMemory, ShmLock } = require('../index.js')
const here = fileURLToPath(new URL('.', import.meta.url))

const percentile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))]
function stats(samples) {
  const sorted = [...samples].sort((a, b) => a - b)
  return { p50Ns: percentile(sorted, 0.5), p99Ns: percentile(sorted, 0.99), samples: sorted.length }
}

/** Nanoseconds per uncontended lock()+unlock() pair from JS (best of `rounds` timed loops). */
export function lockUnlock(rounds, iters) {
  const shm = SharedMemory.create(4096, { track: false })
  try {
    const lock = ShmLock.create(shm, 0)
    let best = Infinity
    for (let r = 0; r < rounds; r++) {
      const started = process.hrtime.bigint()
      for (let i = 0; i < iters; i++) {
        lock.lock()
        lock.unlock()
      }
      best = Math.min(best, Number(process.hrtime.bigint() - started) / iters)
    }
    lock.close()
    return best
  } finally {
    shm.close()
    shm.unlink()
  }
}

function collect(child) {
  return new Promise((resolve, reject) => {
    let result
    child.on('message', (m) => (result = m))
    child.on('error', reject)
    child.on('exit', (code) => (code === 0 ? resolve(result) : reject(new Error(`exit ${code}`))))
  })
}

export async function shmkitWake(rounds) {
  const shm = SharedMemory.create(4096, { track: false })
  try {
    const players = [0, 1].map((parity) =>
      collect(fork(join(here, 'peers', 'wake-latency.cjs'), [shm.name, String(parity), String(rounds)], { execArgv: [] })),
    )
    const [a, b] = await Promise.all(players)
    return stats([...a, ...b])
  } finally {
    shm.close()
    shm.unlink()
  }
}

export function cFutexWake(rounds) {
  const dir = mkdtempSync(join(tmpdir(), 'shmkit-bench-'))
  try {
    const exe = join(dir, 'futex_pingpong')
    execFileSync('cc', ['-O2', '-o', exe, join(here, 'peers', 'futex_pingpong.c')])
    return JSON.parse(execFileSync(exe, [String(rounds)], { encoding: 'utf8' }))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

export async function ipcWake(rounds) {
  const child = fork(join(here, 'peers', 'ipc-latency.cjs'), [String(rounds)], { execArgv: [] })
  const samples = []
  const done = new Promise((resolve, reject) => {
    child.on('message', (m) => {
      if (m.samples) {
        child.disconnect()
        resolve(m.samples)
        return
      }
      samples.push(Number(process.hrtime.bigint() - BigInt(m.stamp)))
      child.send({ stamp: String(process.hrtime.bigint()) })
    })
    child.on('error', reject)
  })
  child.send({})
  const theirs = await done
  return stats([...samples, ...theirs])
}

// --- Async waits on shmkit's shared waiter threads (issue #14, "Scale") ---

/** The wake-up ping-pong of `shmkitWake` with `await shm.waitAsync` on both sides. */
export async function shmkitWakeAsync(rounds) {
  const shm = SharedMemory.create(4096, { track: false })
  try {
    const players = [0, 1].map((parity) =>
      collect(fork(join(here, 'peers', 'wake-latency-async.cjs'), [shm.name, String(parity), String(rounds)], { execArgv: [] })),
    )
    const [a, b] = await Promise.all(players)
    return stats([...a, ...b])
  } finally {
    shm.close()
    shm.unlink()
  }
}

/** Threads of this process named `shmkit-waiter` (Linux; null elsewhere). */
function waiterThreads() {
  try {
    return readdirSync('/proc/self/task').filter((task) => {
      try {
        return readFileSync(`/proc/self/task/${task}/comm`, 'utf8').trim() === 'shmkit-waiter'
      } catch {
        return false
      }
    }).length
  } catch {
    return null
  }
}

/**
 * `waits` concurrent waitAsync on `words` words of one segment: the time to start them, the
 * waiter threads they used, and the time from the first notify until every promise settled
 * (each word is changed and notified once). Median of `rounds`.
 */
export async function manyAsyncWaits(waits, words, rounds) {
  const shm = SharedMemory.create(words * 4, { track: false })
  const cells = new Int32Array(shm.buffer)
  const startMs = []
  const settleMs = []
  let threads = 0
  try {
    for (let r = 0; r < rounds; r++) {
      const expected = r
      const began = performance.now()
      const pending = []
      for (let i = 0; i < waits; i++) pending.push(shm.waitAsync((i % words) * 4, expected))
      startMs.push(performance.now() - began)
      await new Promise((resolve) => setTimeout(resolve, 20))
      threads = Math.max(threads, waiterThreads() ?? 0)
      const notified = performance.now()
      for (let w = 0; w < words; w++) {
        Atomics.store(cells, w, expected + 1)
        shm.notify(w * 4)
      }
      const outcomes = await Promise.all(pending)
      settleMs.push(performance.now() - notified)
      if (outcomes.some((o) => o !== 'ok')) throw new Error(`a wait ended with ${outcomes.find((o) => o !== 'ok')}`)
    }
  } finally {
    shm.close()
    shm.unlink()
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
  return { waits, words, startMs: median(startMs), settleMs: median(settleMs), waiterThreads: threads, rounds }
}
