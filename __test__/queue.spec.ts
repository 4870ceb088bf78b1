import { type ChildProcess, fork, spawn, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { inspect } from 'node:util'
import { deserialize } from 'node:v8'
import { Worker } from 'node:worker_threads'

import test, { type ExecutionContext } from 'ava'

import { SharedMemory, SharedQueue } from '../index.js'
import { EMULATOR, FIXTURES, iterations, runChild, runs } from './helpers.js'

const ROOT = join(FIXTURES, '..', '..')

/** A queue unlinked when the test ends. */
function scratch(t: ExecutionContext, options: Parameters<typeof SharedQueue.create>[0] = {}): SharedQueue {
  const queue = SharedQueue.create(options)
  t.teardown(() => {
    queue.close()
    try {
      queue.unlink()
    } catch {}
  })
  return queue
}

function code(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err) {
    return (err as NodeJS.ErrnoException).code
  }
  return undefined
}

async function asyncCode(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise
  } catch (err) {
    return (err as NodeJS.ErrnoException).code
  }
  return undefined
}

test('values come back as the kind they were put: strings, bytes, Buffers, structured clones', (t) => {
  const queue = scratch(t, { capacity: 8, maxMessageSize: 256 })
  const values: unknown[] = [
    'short',
    '',
    'ünïcödé ✓ 𝄞',
    new Uint8Array([1, 2, 3]),
    Buffer.from('buffer'),
    { i: 1, tag: 'x', nested: [1, 2n, new Date(0), new Map([[1, 'one']])] },
    42,
    null,
  ]
  for (const value of values) queue.put(value)
  t.is(queue.qsize(), 8)
  t.true(queue.full())
  for (const value of values) {
    const got = queue.get()
    t.deepEqual(got, value)
    if (value instanceof Uint8Array) t.is(Buffer.isBuffer(got), Buffer.isBuffer(value))
  }
  t.true(queue.empty())
  t.is(queue.lost, 0)
  t.is(queue.capacity, 8)
  t.is(queue.maxMessageSize, 256)
  t.deepEqual(JSON.parse(JSON.stringify(queue)), { name: queue.name })
  t.regex(inspect(queue), /^SharedQueue\(name='(psm|wnsm)_[0-9a-f]+', qsize=0, capacity=8\)$/)
})

test('timeouts throw coded errors; a full or empty queue waits that long', async (t) => {
  const queue = scratch(t, { capacity: 2, maxMessageSize: 16 })
  let started = performance.now()
  t.is(code(() => queue.get({ timeout: 30 })), 'ERR_SHM_QUEUE_EMPTY')
  t.true(performance.now() - started >= 29)
  t.is(await asyncCode(queue.getAsync({ timeout: 20 })), 'ERR_SHM_QUEUE_EMPTY')
  queue.put('a')
  queue.put('b')
  started = performance.now()
  t.is(code(() => queue.put('c', { timeout: 30 })), 'ERR_SHM_QUEUE_FULL')
  t.true(performance.now() - started >= 29)
  t.is(await asyncCode(queue.putAsync('c', { timeout: 20 })), 'ERR_SHM_QUEUE_FULL')
  t.is(code(() => queue.put('c', { timeout: 0 })), 'ERR_SHM_QUEUE_FULL')
  t.is(code(() => queue.put('x'.repeat(17))), 'ERR_SHM_VALUE_TOO_LARGE')
  // A waiting putAsync goes through once a get makes room, and the event loop stays free.
  const putting = queue.putAsync('c', { timeout: 5000 })
  await new Promise((r) => setTimeout(r, 30))
  t.is(queue.get(), 'a')
  await putting
  t.deepEqual([queue.get(), queue.get()], ['b', 'c'])
})

test('end(): readers drain what is left, then get throws ERR_SHM_QUEUE_ENDED and for await ends', async (t) => {
  const queue = scratch(t, { capacity: 4 })
  queue.put(1)
  queue.put(2)
  setTimeout(() => {
    queue.put(3)
    queue.end()
  }, 30)
  const got: unknown[] = []
  for await (const value of queue) got.push(value)
  t.deepEqual(got, [1, 2, 3])
  t.true(queue.ended)
  t.is(code(() => queue.get()), 'ERR_SHM_QUEUE_ENDED')
  t.is(code(() => queue.put(4)), 'ERR_SHM_QUEUE_ENDED')
  t.is(await asyncCode(queue.getAsync()), 'ERR_SHM_QUEUE_ENDED')
})

test('close() ends a waiting getAsync with ERR_SHM_CLOSED; later calls throw it', async (t) => {
  const queue = scratch(t)
  const waiting = queue.getAsync()
  await new Promise((r) => setTimeout(r, 20))
  queue.close()
  t.is(await asyncCode(waiting), 'ERR_SHM_CLOSED')
  t.is(code(() => queue.get()), 'ERR_SHM_CLOSED')
  t.is(code(() => queue.put(1)), 'ERR_SHM_CLOSED')
  t.true(queue.closed)
  queue.close()
})

test('bad arguments are coded errors', (t) => {
  t.is(code(() => SharedQueue.create({ capacity: 0 })), 'ERR_OUT_OF_RANGE')
  t.is(code(() => SharedQueue.create({ capacity: 1.5 })), 'ERR_OUT_OF_RANGE')
  t.is(code(() => SharedQueue.create({ capacity: 1 << 21 })), 'ERR_INVALID_ARG_VALUE')
  t.is(code(() => SharedQueue.create({ maxMessageSize: -1 })), 'ERR_OUT_OF_RANGE')
  t.is(code(() => SharedQueue.create('big' as never)), 'ERR_INVALID_ARG_TYPE')
  t.is(code(() => SharedQueue.open(42 as never)), 'ERR_INVALID_ARG_TYPE')
  t.is(code(() => SharedQueue.open('psm_no_such_queue')), 'ENOENT')
  const queue = scratch(t)
  t.is(code(() => queue.put(1, 'soon' as never)), 'ERR_INVALID_ARG_TYPE')
  t.is(code(() => queue.get({ timeout: '1' as never })), 'ERR_INVALID_ARG_TYPE')
  t.is(code(() => queue.get({ timeout: -1 })), 'ERR_OUT_OF_RANGE')
  t.is(code(() => queue.put(() => 1)), 'ERR_SHM_UNSUPPORTED_TYPE', 'a function does not clone')
  t.is(code(() => SharedQueue.prototype.qsize.call({})), 'ERR_INVALID_ARG_TYPE')
})

test('hostile header and slot bytes are ERR_SHM_CORRUPT, never a crash or a hang', (t) => {
  const queue = scratch(t, { capacity: 4, maxMessageSize: 64 })
  const shm = SharedMemory.open(queue.name)
  t.teardown(() => shm.close())
  const words = new DataView(shm.buffer)
  const slot = (i: number) => 256 + i * 128 // round_up(16 + 64, 64)

  // Header: magic, version, capacity, slot size.
  for (const [at, value] of [
    [0, 0xdeadbeef],
    [4, 9],
    [8, 3],
    [12, 4096],
  ]) {
    const before = words.getUint32(at, true)
    words.setUint32(at, value, true)
    t.is(code(() => SharedQueue.open(queue.name)), 'ERR_SHM_CORRUPT', `byte ${at}`)
    words.setUint32(at, before, true)
  }
  const reader = SharedQueue.open(queue.name)
  t.teardown(() => reader.close())

  // A slot sequence no state explains.
  words.setUint32(slot(0), 0x12345, true)
  t.is(code(() => reader.get({ timeout: 0 })), 'ERR_SHM_CORRUPT')
  t.is(code(() => reader.put('x', { timeout: 0 })), 'ERR_SHM_CORRUPT')
  words.setUint32(slot(0), 0, true)

  // A length beyond the maximum, a serialized value that does not deserialize, a string that
  // is not UTF-8, an unknown tag: each message is refused, the next one comes.
  const damage = [
    (at: number) => words.setUint32(at + 8, 1 << 30, true),
    (at: number) => shm.buf.fill(0xff, at + 16, at + 24),
    (at: number) => shm.buf.fill(0xff, at + 16, at + 18),
    (at: number) => words.setUint32(at + 12, 77, true),
  ]
  const sent = [{ a: 1 }, { serialized: true }, 'text', 'tag']
  for (const [i, hurt] of damage.entries()) {
    queue.put(sent[i])
    queue.put('next')
    hurt(slot((i * 2) % 4))
    t.is(code(() => reader.get()), 'ERR_SHM_CORRUPT', `damage ${i}`)
    t.is(reader.get(), 'next')
  }
  t.is(reader.lost, 1, 'the message with an impossible length is counted lost')
})

interface Peer {
  done: Promise<{ got?: [number, number][] }>
}

function forkPeer(args: string[]): Peer & { child: ChildProcess } {
  const child = fork(join(FIXTURES, 'queue-peer.cjs'), args, { execArgv: [], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
  let last: { got?: [number, number][] } = {}
  child.on('message', (m) => (last = m as typeof last))
  const done = new Promise<typeof last>((resolve, reject) =>
    // 'close', not 'exit': only then is the last IPC message in.
    child.on('close', (code) => (code === 0 ? resolve(last) : reject(new Error(`${args[0]} exited with ${code}`)))),
  )
  return { child, done }
}

function workerPeer(args: string[]): Peer {
  const worker = new Worker(join(FIXTURES, 'queue-peer.cjs'), { workerData: args })
  let last: { got?: [number, number][] } = {}
  worker.on('message', (m) => (last = m as typeof last))
  const done = new Promise<typeof last>((resolve, reject) => {
    worker.on('error', reject)
    worker.on('exit', (code) => (code === 0 ? resolve(last) : reject(new Error(`worker ${args[0]} exited with ${code}`))))
  })
  return { done }
}

function checkDelivery(t: ExecutionContext, consumers: [number, number][][], producers: number[], each: number) {
  const seen = new Map<number, number[]>(producers.map((p) => [p, []]))
  for (const got of consumers) {
    const last = new Map<number, number>()
    for (const [p, i] of got) {
      const before = last.get(p)
      if (before !== undefined && i <= before) t.fail(`producer ${p}: ${i} after ${before} in one consumer`)
      last.set(p, i)
      seen.get(p)!.push(i)
    }
  }
  for (const [p, seqs] of seen) {
    seqs.sort((a, b) => a - b)
    t.is(seqs.length, each, `producer ${p}: count`)
    t.true(
      seqs.every((s, k) => s === k),
      `producer ${p}: every message exactly once`,
    )
  }
}

test('4 producers × 4 consumers in processes and workers: each message exactly once, in producer order', async (t) => {
  // Scaled down under emulation (SHMKIT_ITERATION_SCALE): 64 slots still wrap many times.
  const EACH = iterations(3000, 300)
  const queue = scratch(t, { capacity: 64, maxMessageSize: 128 })
  const consumers = [
    forkPeer(['consume', queue.name]),
    forkPeer(['consume', queue.name]),
    workerPeer(['consume', queue.name]),
    workerPeer(['consume', queue.name]),
  ]
  const producers = [
    forkPeer(['produce', queue.name, '1', String(EACH)]),
    forkPeer(['produce', queue.name, '2', String(EACH)]),
    workerPeer(['produce', queue.name, '3', String(EACH)]),
    workerPeer(['produce', queue.name, '4', String(EACH)]),
  ]
  await Promise.all(producers.map((p) => p.done))
  queue.end()
  const results = await Promise.all(consumers.map((c) => c.done))
  checkDelivery(
    t,
    results.map((r) => r.got!),
    [1, 2, 3, 4],
    EACH,
  )
  t.is(queue.lost, 0)
})

test('a producer SIGKILLed in the middle of a put: the queue goes on and counts the message lost', async (t) => {
  // The kill is aimed: this process watches the slot words (sequence | owner pid << 32) and
  // kills the producer the moment one names it, i.e. while it copies a 1 MiB message into a
  // claimed slot. Nothing consumes until then, so the producer is putting, not waiting.
  const HEADER_BYTES = 256
  const MESSAGE = 1 << 20
  const SLOT_BYTES = Math.ceil((16 + MESSAGE) / 64) * 64
  let lostSeen = 0
  for (let round = 0; round < 10 && lostSeen === 0; round++) {
    const queue = scratch(t, { capacity: 32, maxMessageSize: MESSAGE })
    const shm = SharedMemory.open(queue.name)
    t.teardown(() => shm.close())
    const words = new DataView(shm.buffer)
    const producer = forkPeer(['produce', queue.name, '1', 'forever', 'big'])
    producer.done.catch(() => {})
    const pid = producer.child.pid!
    const claimed = () => {
      for (let slot = 0; slot < 32; slot++) {
        if (words.getUint32(HEADER_BYTES + slot * SLOT_BYTES + 4, true) === pid) return true
      }
      return false
    }
    // The 10 s count from the producer's start: under emulation (qemu-user, a loaded machine)
    // starting it can take longer than that, and the kill then came before its first put.
    await Promise.race([new Promise((r) => producer.child.once('message', r)), producer.done.catch(() => {})])
    const deadline = Date.now() + 10_000
    for (;;) {
      while (!claimed() && Date.now() < deadline) {
        if (queue.full()) break
        await new Promise<void>((r) => setImmediate(r))
        for (let spin = 0; spin < 20_000 && !claimed(); spin++);
      }
      // Where there are signals to stop it, the producer is frozen first and killed only if it
      // is still mid-put: under emulation (qemu-user) it copied the whole message between this
      // process seeing the claim and the kill landing, round after round.
      if (process.platform === 'win32' || !claimed() || Date.now() >= deadline) break
      producer.child.kill('SIGSTOP')
      await new Promise((r) => setTimeout(r, 20))
      if (claimed()) break
      producer.child.kill('SIGCONT')
    }
    producer.child.kill('SIGKILL')
    await new Promise((r) => producer.child.once('exit', r))
    // Everything the dead producer committed is delivered whole; its half-written message is
    // not; a new producer's message gets through after them.
    let received = 0
    const consuming = (async () => {
      for await (const value of queue) {
        const bytes = value as Uint8Array
        t.is(bytes.length, MESSAGE)
        t.true(bytes[MESSAGE >> 1] === bytes[0] && bytes[MESSAGE - 1] === bytes[0], 'a delivered message is whole')
        received += 1
      }
    })()
    await queue.putAsync(new Uint8Array(MESSAGE).fill(7))
    queue.end()
    await consuming
    t.true(received > 0)
    t.true(queue.lost <= 1)
    lostSeen += queue.lost
  }
  t.is(lostSeen, 1, 'one kill landed mid-put and its message was counted lost')
})

// The Rust peer is built from this checkout for this machine. The emulated runs (qemu, Wine)
// test a copied tree without the Rust sources, and the host's cargo would build for the host.
const rustPeer: typeof test =
  existsSync(join(ROOT, 'crate', 'examples', 'queue_peer.rs')) && runs('cargo')
    ? test
    : (((title: string) => {
        console.log(`skipped: no Rust source tree and cargo for this machine here: ${title}`)
        test.skip(title, () => {})
      }) as unknown as typeof test)

rustPeer('a Rust program on one end: exactly once both ways with Node', async (t) => {
  const build = spawnSync('cargo', ['build', '--release', '-p', 'shmkit-core', '--example', 'queue_peer'], {
    cwd: ROOT,
    encoding: 'utf8',
  })
  t.is(build.status, 0, build.stderr)
  const exe = join(ROOT, 'target', 'release', 'examples', process.platform === 'win32' ? 'queue_peer.exe' : 'queue_peer')
  const EACH = 5000

  // Node produces, Rust consumes.
  const toRust = scratch(t, { capacity: 32 })
  const rust = spawn(exe, ['consume', toRust.name], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  rust.stdout!.on('data', (d) => (out += d))
  const rustDone = new Promise((r) => rust.on('exit', r))
  await forkPeer(['produce', toRust.name, '5', String(EACH)]).done
  toRust.end()
  t.is(await rustDone, 0)
  const lines = out.trim().split('\n')
  t.is(lines.length, EACH)
  const decoded = lines.map((line) => {
    const [tag, hex] = line.split(' ')
    const bytes = Buffer.from(hex ?? '', 'hex')
    // Tags: 1 string, 2 Uint8Array, 0 v8.serialize (see src/queue.rs).
    if (tag === '1') return bytes.toString('utf8').split(':').map(Number)
    if (tag === '2') return [bytes[0], bytes[1] | (bytes[2] << 8) | (bytes[3] << 16)]
    const value = deserialize(bytes) as { p: number; i: number }
    return [value.p, value.i]
  }) as [number, number][]
  checkDelivery(t, [decoded], [5], EACH)

  // Rust produces, Node consumes.
  const fromRust = scratch(t, { capacity: 32 })
  const consumer = forkPeer(['consume', fromRust.name])
  const producer = spawnSync(exe, ['produce', fromRust.name, '6', String(EACH)], { encoding: 'utf8' })
  t.is(producer.status, 0, producer.stderr)
  fromRust.end()
  checkDelivery(t, [(await consumer.done).got!], [6], EACH)
})

// Zero-copy borrowed slots: reserve/commit on the producer side, borrow/release on the consumer side.

/** As the fixture's: bytes that depend on their place and on the message number. */
function pattern(bytes: Uint8Array, i: number) {
  for (let k = 0; k < bytes.length; k += 4096) bytes.fill((k / 4096 + i) & 0xff, k, k + 4096)
  bytes[bytes.length - 1] = i & 0xff
}

function sum(bytes: Uint8Array): number {
  let total = 0
  for (let k = 0; k < bytes.length; k++) total += bytes[k]
  return total
}

test('1 MiB messages through borrowed slots, both ways between processes, without copies', async (t) => {
  const MiB = 1 << 20
  const COUNT = 6
  // The first borrow waits for the child to start: seconds of CPU under emulation, where 10 s
  // ran out on a loaded machine (qemu-user) before the child had put anything.
  const WAIT = EMULATOR ? 120_000 : 10_000
  const queue = scratch(t, { capacity: 2, maxMessageSize: MiB })
  const expected = Array.from({ length: COUNT }, (_, i) => {
    const bytes = new Uint8Array(MiB)
    pattern(bytes, i)
    return [MiB, sum(bytes)]
  })

  // A child reserves and commits; this process borrows and releases.
  const producer = forkPeer(['big-reserve', queue.name, String(COUNT)])
  for (let i = 0; i < COUNT; i++) {
    const lent = queue.borrow({ timeout: WAIT })
    t.is(lent.tag, 2)
    t.deepEqual([lent.bytes.length, sum(lent.bytes)], expected[i], `message ${i}`)
    lent.release()
  }
  await producer.done

  // This process reserves and commits; a child borrows and reports what it saw.
  const consumer = forkPeer(['big-borrow', queue.name, String(COUNT)])
  for (let i = 0; i < COUNT; i++) {
    const slot = queue.reserve(MiB, { timeout: WAIT })
    pattern(slot.bytes, i)
    slot.commit()
  }
  t.deepEqual((await consumer.done as { sums: number[][] }).sums, expected)

  // A committed reservation reads back through get() as a Uint8Array; a shorter commit sends
  // only that many bytes.
  const slot = queue.reserve(MiB)
  slot.bytes.set([1, 2, 3])
  slot.commit(3)
  t.deepEqual(queue.get(), new Uint8Array([1, 2, 3]))
  t.is(queue.lost, 0)
})

test('a borrowed view is detached once committed, aborted, released or closed', (t) => {
  const queue = scratch(t, { capacity: 4, maxMessageSize: 64 })
  const slot = queue.reserve(16)
  const written = slot.bytes
  t.is(written.length, 16)
  t.true(slot.open)
  written.fill(5)
  slot.commit()
  t.false(slot.open)
  t.is(written.length, 0, 'the reservation view reads length 0 after commit')
  t.is(written[0], undefined)
  t.is(code(() => slot.bytes), 'ERR_SHM_SLOT_FINISHED')

  const lent = queue.borrow()
  const read = lent.bytes
  t.deepEqual([...read], Array(16).fill(5))
  t.regex(inspect(lent), /^QueueBorrow\(16 bytes\)$/)
  lent.release()
  t.is(read.length, 0, 'the borrowed view reads length 0 after release')
  t.is(code(() => lent.bytes), 'ERR_SHM_SLOT_FINISHED')
  t.regex(inspect(lent), /^QueueBorrow\(finished\)$/)

  const aborted = queue.reserve(8)
  const gone = aborted.bytes
  aborted.abort()
  t.is(gone.length, 0)

  // `using` (Symbol.dispose) aborts an uncommitted reservation and releases a borrow.
  const disposed = queue.reserve(8)
  const disposedView = disposed.bytes
  disposed[Symbol.dispose]()
  t.is(disposedView.length, 0)
  t.false(disposed.open)
  queue.put('x')
  const disposedBorrow = queue.borrow()
  disposedBorrow[Symbol.dispose]()
  t.false(disposedBorrow.open)
  disposedBorrow[Symbol.dispose]() // twice is harmless
  t.true(queue.empty())
  t.is(queue.lost, 0, 'aborting loses nothing: nothing was put')

  // close() aborts reservations and releases borrows this handle holds; their views detach.
  const other = SharedQueue.open(queue.name)
  const held = other.reserve(8)
  const heldView = held.bytes
  queue.put('kept')
  t.is(code(() => queue.get({ timeout: 0 })), 'ERR_SHM_QUEUE_EMPTY', 'consumers wait at the reservation in front')
  other.close()
  t.is(heldView.length, 0)
  t.false(held.open)
  t.is(code(() => held.commit()), 'ERR_SHM_SLOT_FINISHED')
  t.is(queue.get({ timeout: 1000 }), 'kept', 'the aborted slot is skipped; the next message comes')
  queue.put('lend')
  const reader = SharedQueue.open(queue.name)
  const borrowed = reader.borrow()
  const borrowedView = borrowed.bytes
  t.is(borrowedView.length, 4)
  reader.close()
  t.is(borrowedView.length, 0)
  t.false(borrowed.open)
  t.true(queue.empty())
  t.is(queue.lost, 0)
})

test('a reservation or a borrow collected unfinished is finished, and its views detached', async (t) => {
  const { code: exit, stderr, messages } = await runChild('queue-slot-gc.cjs', [], { execArgv: ['--expose-gc'] })
  t.is(exit, 0, stderr)
  t.deepEqual(messages, [{ reserved: [0, 0, 0], borrowed: 0, next: 'next', lost: 0, qsize: 0 }])
})

test('borrowed-slot arguments and misuse are coded errors that change nothing', (t) => {
  const queue = scratch(t, { capacity: 2, maxMessageSize: 64 })
  t.is(code(() => queue.reserve(65)), 'ERR_SHM_VALUE_TOO_LARGE')
  t.is(code(() => queue.reserve(-1)), 'ERR_OUT_OF_RANGE')
  t.is(code(() => queue.reserve(1.5)), 'ERR_OUT_OF_RANGE')
  t.is(code(() => queue.reserve('8' as unknown as number)), 'ERR_INVALID_ARG_TYPE')
  t.is(code(() => queue.reserve(8, { timeout: -1 })), 'ERR_OUT_OF_RANGE')
  t.is(code(() => queue.borrow({ timeout: 0 })), 'ERR_SHM_QUEUE_EMPTY')
  t.is(queue.qsize(), 0)

  const slot = queue.reserve(8)
  slot.bytes.fill(1)
  t.is(code(() => slot.commit(9)), 'ERR_OUT_OF_RANGE', 'a commit longer than the reservation')
  t.is(code(() => slot.commit(-1)), 'ERR_OUT_OF_RANGE')
  t.is(code(() => slot.commit('4' as unknown as number)), 'ERR_INVALID_ARG_TYPE')
  t.true(slot.open, 'a refused commit leaves the reservation as it was')
  t.is(slot.bytes.length, 8)
  slot.commit(4)
  t.is(code(() => slot.commit()), 'ERR_SHM_SLOT_FINISHED', 'a second commit')
  t.is(code(() => slot.abort()), 'ERR_SHM_SLOT_FINISHED', 'abort after commit')

  queue.put('two')
  t.is(code(() => queue.reserve(1, { timeout: 0 })), 'ERR_SHM_QUEUE_FULL')
  const lent = queue.borrow()
  t.deepEqual([...lent.bytes], [1, 1, 1, 1])
  lent.release()
  t.is(code(() => lent.release()), 'ERR_SHM_SLOT_FINISHED', 'a second release')
  t.is(queue.get(), 'two')

  const proto = Object.getPrototypeOf(lent)
  t.is(code(() => proto.release.call({})), 'ERR_INVALID_ARG_TYPE')
  queue.end()
  t.is(code(() => queue.reserve(1)), 'ERR_SHM_QUEUE_ENDED')
  t.is(code(() => queue.borrow()), 'ERR_SHM_QUEUE_ENDED')
  queue.close()
  t.is(code(() => queue.reserve(1)), 'ERR_SHM_CLOSED')
  t.is(code(() => queue.borrow()), 'ERR_SHM_CLOSED')
})

test('a hostile length is never lent: ERR_SHM_CORRUPT, the message counted lost, the next one comes', (t) => {
  const queue = scratch(t, { capacity: 4, maxMessageSize: 64 })
  const shm = SharedMemory.open(queue.name)
  t.teardown(() => shm.close())
  const words = new DataView(shm.buffer)
  queue.put('first')
  queue.put('second')
  words.setUint32(256 + 8, 65, true) // slot 0's length, one above the maximum
  t.is(code(() => queue.borrow()), 'ERR_SHM_CORRUPT')
  t.is(queue.lost, 1)
  const lent = queue.borrow()
  t.is(Buffer.from(lent.bytes).toString(), 'second')
  lent.release()
})

function holder(role: 'hold-reserve' | 'hold-borrow', name: string) {
  const peer = forkPeer([role, name])
  peer.done.catch(() => {})
  const holding = new Promise<void>((resolve) => peer.child.on('message', (m) => (m as { holding?: boolean }).holding && resolve()))
  return { ...peer, holding }
}

test('a consumer SIGKILLed holding a borrowed slot: producers go on and the message is counted lost', async (t) => {
  const queue = scratch(t, { capacity: 2, maxMessageSize: 16 })
  queue.put('lent')
  const consumer = holder('hold-borrow', queue.name)
  await consumer.holding
  queue.put('one')
  // The next put needs the lent slot (a lap later): it waits while the borrower lives...
  t.is(code(() => queue.put('two', { timeout: 150 })), 'ERR_SHM_QUEUE_FULL')
  consumer.child.kill('SIGKILL')
  await new Promise((r) => consumer.child.once('exit', r))
  // ...and frees it once the borrower is gone.
  queue.put('two', { timeout: 5000 })
  t.is(queue.lost, 1)
  t.is(queue.get(), 'one')
  t.is(queue.get(), 'two')
  t.true(queue.empty())
})

test('a producer SIGKILLed holding a reservation: consumers go on and the message is counted lost', async (t) => {
  const queue = scratch(t, { capacity: 2, maxMessageSize: 16 })
  const producer = holder('hold-reserve', queue.name)
  await producer.holding
  queue.put('after')
  // Consumers wait at the reserved message while its producer lives (producer order)...
  t.is(code(() => queue.get({ timeout: 150 })), 'ERR_SHM_QUEUE_EMPTY')
  producer.child.kill('SIGKILL')
  await new Promise((r) => producer.child.once('exit', r))
  // ...then skip it: the half-written message is never delivered.
  t.is(queue.get({ timeout: 5000 }), 'after')
  t.is(queue.lost, 1)
  queue.put('again')
  t.is(queue.get(), 'again')
})
