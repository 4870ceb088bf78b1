// Async waits share a bounded pool of native waiter threads (shmkit_core::waiter): at most
// 16 that sleep on up to 127 words each with futex_waitv, plus one that polls the rest, and
// none once nothing waits for a second. These specs hold many waits at once and count the
// threads named `shmkit-waiter` in /proc/self/task (Linux; elsewhere the counts are skipped).
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'

import test, { type ExecutionContext } from 'ava'

import { SharedMemory, SharedQueue, ShmLock } from '../index.js'
import { EMULATOR, FIXTURES } from './helpers.js'

const ROOT = join(FIXTURES, '..', '..')
/** What README promises: 16 futex_waitv threads and one polling thread at most. */
const MAX_WAITER_THREADS = 17
// Linux only: Node for Windows under Wine also sees Linux's /proc (Wine maps Z: to /), where
// the Windows threads it lists are Wine's, not named as shmkit names them.
const COUNTS_THREADS = process.platform === 'linux' && existsSync('/proc/self/task')

/** Threads of this process named as shmkit's waiter threads (null where /proc is missing). */
function waiterThreads(): number | null {
  if (!COUNTS_THREADS) return null
  let count = 0
  for (const task of readdirSync('/proc/self/task')) {
    try {
      if (readFileSync(`/proc/self/task/${task}/comm`, 'utf8').trim() === 'shmkit-waiter') count++
    } catch {} // the thread ended meanwhile
  }
  return count
}

/** Every thread of this process, from /proc/self/status. */
function allThreads(): number | null {
  if (!COUNTS_THREADS) return null
  const match = /^Threads:\s+(\d+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))
  return match ? Number(match[1]) : null
}

/** Polls until no waiter thread is left (they end after 1 s idle); the count at the end. */
async function waiterThreadsSettle(): Promise<number | null> {
  const until = performance.now() + 5000
  let count = waiterThreads()
  while (count !== null && count > 0 && performance.now() < until) {
    await new Promise((r) => setTimeout(r, 100))
    count = waiterThreads()
  }
  return count
}

function scratch(t: ExecutionContext, size = 4096): SharedMemory {
  const shm = SharedMemory.create(size)
  t.teardown(() => {
    shm.close()
    try {
      shm.unlink()
    } catch {}
  })
  return shm
}

const ticks = () => new Promise((r) => setTimeout(r, 20))

test.serial('10 000 waitAsync on 1 000 words all settle with ok when their words are notified, on a bounded number of threads', async (t) => {
  const shm = scratch(t)
  const words = new Int32Array(shm.buffer)
  const before = allThreads()
  const waits: Promise<string>[] = []
  for (let i = 0; i < 10_000; i++) waits.push(shm.waitAsync((i % 1000) * 4, 0))
  await ticks()
  const during = waiterThreads()
  const total = allThreads()
  t.log(`threads: ${before} before, ${total} with 10 000 waits pending (${during} waiter threads)`)
  if (during !== null) {
    t.true(during >= 1 && during <= MAX_WAITER_THREADS, `${during} waiter threads`)
    // 1 000 words need ceil(1000 / 127) = 8 futex_waitv threads (or 1 polling thread).
    t.true(during <= 8, `${during} waiter threads for 1 000 words`)
  }
  if (before !== null && total !== null) t.true(total - before <= MAX_WAITER_THREADS + 4, 'at most the waiters and libuv\'s pool appeared')
  let settled = 0
  for (const wait of waits) void wait.then(() => settled++)
  await ticks()
  t.is(settled, 0, 'nothing settles before its word moves')
  for (let word = 0; word < 1000; word++) {
    Atomics.store(words, word, 1)
    shm.notify(word * 4)
  }
  const outcomes = await Promise.all(waits)
  t.is(outcomes.filter((o) => o === 'ok').length, 10_000)
  t.is(await waiterThreadsSettle() ?? 0, 0, 'waiter threads end once nothing waits')
})

test.serial('waitAsync answers not-equal at once, and timeouts settle with timed-out', async (t) => {
  const shm = scratch(t)
  const words = new Int32Array(shm.buffer)
  Atomics.store(words, 1000, 7)
  t.is(await shm.waitAsync(4000, 0), 'not-equal')
  t.is(await shm.waitAsync(4000, 7, 0), 'timed-out')
  const started = performance.now()
  const waits: Promise<string>[] = []
  for (let i = 0; i < 2000; i++) waits.push(shm.waitAsync((i % 200) * 4, 0, 20 + (i % 5) * 20))
  const outcomes = await Promise.all(waits)
  t.deepEqual([...new Set(outcomes)], ['timed-out'])
  t.true(performance.now() - started >= 99, 'the longest timeout was honoured')
  // A short timeout among long waits on the same word ends on time, and leaves the others waiting.
  const long = shm.waitAsync(0, 0, 10_000)
  t.is(await shm.waitAsync(0, 0, 30), 'timed-out')
  Atomics.store(words, 0, 1)
  shm.notify(0)
  t.is(await long, 'ok')
})

test.serial('close() while 5 000 waits are pending rejects every one with ERR_SHM_CLOSED', async (t) => {
  const shm = scratch(t)
  const other = SharedMemory.open(shm.name)
  t.teardown(() => other.close())
  const waits: Promise<string>[] = []
  for (let i = 0; i < 5000; i++) waits.push(shm.waitAsync((i % 500) * 4, 0))
  // Waits on another handle of the same segment are not ended by closing this one. (Settled
  // into a value at once: were it rejected, that must fail here, not as an unhandled rejection.)
  const survivor = other.waitAsync(0, 0).then(
    (result) => result,
    (err: NodeJS.ErrnoException) => `rejected: ${err.code} ${err.message}`,
  )
  await ticks()
  const closedAt = performance.now()
  shm.close()
  const outcomes = await Promise.allSettled(waits)
  // Promptly, not when a wait would time out (these never do). An emulator runs the 5 000
  // rejections many times slower (qemu-user: 0.75 s alone, over 1 s beside other work).
  const bound = EMULATOR ? 20_000 : 1000
  const took = performance.now() - closedAt
  t.true(took < bound, `the waits settled ${took.toFixed(0)} ms after close()`)
  t.is(outcomes.filter((o) => o.status === 'rejected' && (o.reason as NodeJS.ErrnoException).code === 'ERR_SHM_CLOSED').length, 5000)
  Atomics.store(new Int32Array(other.buffer), 0, 1)
  other.notify(0)
  t.is(await survivor, 'ok')
})

test.serial('a worker terminated with 2 000 waits pending: no crash, and the waiter threads go away', async (t) => {
  const shm = scratch(t)
  const worker = new Worker(
    `const { workerData, parentPort } = require('node:worker_threads')
     const { SharedMemory, ShmLock } = require(workerData.addon)
     const shm = SharedMemory.open(workerData.name)
     const lock = ShmLock.open(shm, 4092)
     for (let i = 0; i < 2000; i++) shm.waitAsync((i % 300) * 4, 0)
     lock.lockAsync()
     parentPort.postMessage('waiting')`,
    { eval: true, workerData: { name: shm.name, addon: join(ROOT, 'index.js') } },
  )
  const held = ShmLock.create(shm, 4092)
  t.is(held.lock(), 'acquired')
  t.is(await new Promise((resolve) => worker.once('message', resolve)), 'waiting')
  await ticks()
  const during = waiterThreads()
  if (during !== null) t.true(during >= 1 && during <= MAX_WAITER_THREADS, `${during} waiter threads`)
  await worker.terminate()
  t.is(await waiterThreadsSettle() ?? 0, 0, 'waiter threads end once the worker\'s waits are gone')
  // The lock the worker was waiting for is still ours, and still works.
  t.true(held.held)
  held.unlock()
  t.is(held.tryLock(), 'acquired')
  held.unlock()
  // And this thread's waits still work.
  const wait = shm.waitAsync(0, 0)
  Atomics.store(new Int32Array(shm.buffer), 0, 1)
  shm.notify(0)
  t.is(await wait, 'ok')
})

test.serial('lockAsync, queue getAsync and waitAsync together: every one settles right, on a bounded number of threads', async (t) => {
  const shm = scratch(t)
  const queue = SharedQueue.create({ capacity: 64 })
  t.teardown(() => {
    queue.close()
    try {
      queue.unlink()
    } catch {}
  })
  // 50 handles on one lock, all queued behind a holder; each unlocks as soon as it has it.
  const holder = ShmLock.create(shm, 0)
  t.is(holder.lock(), 'acquired')
  const handles = Array.from({ length: 50 }, () => ShmLock.open(shm, 0))
  let inside = 0
  let most = 0
  const locks = handles.map(async (lock) => {
    const outcome = await lock.lockAsync(20_000)
    inside++
    most = Math.max(most, inside)
    await ticks()
    inside--
    lock.unlock()
    return outcome
  })
  const gets = Array.from({ length: 40 }, () => queue.getAsync({ timeout: 20_000 }))
  const waits = Array.from({ length: 3000 }, (_, i) => shm.waitAsync(4 + (i % 300) * 4, 0, 20_000))
  await ticks()
  const during = waiterThreads()
  if (during !== null) t.true(during >= 1 && during <= MAX_WAITER_THREADS, `${during} waiter threads`)
  holder.unlock()
  for (let i = 0; i < 40; i++) await queue.putAsync(i)
  const words = new Int32Array(shm.buffer)
  for (let word = 1; word <= 300; word++) {
    Atomics.store(words, word, 1)
    shm.notify(word * 4)
  }
  t.deepEqual([...new Set(await Promise.all(locks))], ['acquired'])
  t.is(most, 1, 'the lock was held by one handle at a time')
  t.deepEqual((await Promise.all(gets)).map(Number).sort((a, b) => a - b), Array.from({ length: 40 }, (_, i) => i))
  t.is((await Promise.all(waits)).filter((o) => o === 'ok').length, 3000)
  for (const lock of handles) lock.close()
})
