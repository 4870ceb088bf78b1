import { type ChildProcess, fork } from 'node:child_process'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'

import test from 'ava'

import { ShareableList, SharedMemory } from '../index.js'
import { FIXTURES, runChild, uniqueName } from './helpers.js'

const PROCESSES = 8
const WORKERS = 4
const PER_ADDER = 250_000

test(`${PROCESSES} processes and ${WORKERS} worker threads × ${PER_ADDER} Atomics.add: exact totals`, async (t) => {
  const shm = SharedMemory.create(64)
  t.teardown(() => shm.unlink())
  const adders: Array<Promise<unknown>> = []
  for (let i = 0; i < PROCESSES; i++) {
    const child = fork(join(FIXTURES, 'atomic-adder.cjs'), [shm.name, String(PER_ADDER)], { execArgv: [] })
    adders.push(new Promise((resolve, reject) => child.on('exit', (code) => (code === 0 ? resolve(code) : reject(new Error(`exit ${code}`))))))
  }
  for (let i = 0; i < WORKERS; i++) {
    const worker = new Worker(join(FIXTURES, 'atomic-adder.cjs'), { workerData: { name: shm.name, count: PER_ADDER } })
    adders.push(new Promise((resolve, reject) => worker.on('exit', resolve).on('error', reject)))
  }
  await Promise.all(adders)
  const total = (PROCESSES + WORKERS) * PER_ADDER
  t.is(Atomics.load(new Int32Array(shm.buffer, 0, 1), 0), total)
  t.is(Atomics.load(new BigInt64Array(shm.buffer, 8, 1), 0), BigInt(total))
  shm.close()
})

test('many processes race to create one name: exactly one wins, every other gets EEXIST', async (t) => {
  const name = uniqueName('race')
  t.teardown(() => {
    try {
      SharedMemory.open(name).unlink()
    } catch {}
  })
  // The winner holds its segment until every racer has tried: on Windows a section, and with
  // it the name, is gone once its last handle closes, and the name could be won again.
  const outcomes: string[] = []
  const winners: ChildProcess[] = []
  const racers = await Promise.all(
    Array.from({ length: 12 }, () =>
      runChild('race-create.cjs', [name, 'hold'], {
        onMessage: (outcome, child) => {
          outcomes.push(outcome as string)
          if (outcome === 'created') winners.push(child)
          if (outcomes.length === 12) for (const winner of winners) winner.send('release')
        },
      }),
    ),
  )
  for (const { code, stderr } of racers) t.is(code, 0, stderr)
  t.is(outcomes.filter((o) => o === 'created').length, 1, outcomes.join(','))
  t.is(outcomes.filter((o) => o === 'EEXIST').length, 11, outcomes.join(','))
})

test('openers racing a creator get ENOENT or the full segment, never an empty one', async (t) => {
  const name = uniqueName('half')
  t.teardown(() => {
    try {
      SharedMemory.open(name).unlink()
    } catch {}
  })
  const openers = Array.from({ length: 6 }, () => runChild('race-open.cjs', [name, String(1 << 20)]))
  await new Promise((r) => setTimeout(r, 150))
  const creator = SharedMemory.create(1 << 20, { name })
  creator.buf[(1 << 20) - 1] = 7
  const results = await Promise.all(openers)
  for (const { code, messages, stderr } of results) {
    t.is(code, 0, stderr)
    const seen = messages[0] as { enoent: number; sizes: number[] }
    t.true(seen.sizes.every((s) => s === 1 << 20), JSON.stringify(seen.sizes.slice(0, 5)))
    t.true(seen.sizes.length > 0, 'each opener eventually attached')
  }
  creator.close()
})

test('ShareableList: writers in several processes and readers never tear values or pair a format with the wrong data', async (t) => {
  const sl = new ShareableList([0, 0, 0, 0, 0, 0, 0, 'abcdefg'])
  t.teardown(() => {
    sl.close()
    sl.shm.unlink()
  })
  const ms = '1500'
  const writers = [0, 1, 2].map((who) => runChild('list-stress.cjs', [sl.shm.name, 'writer', String(who), ms]))
  const readers = [0, 1].map(() => runChild('list-stress.cjs', [sl.shm.name, 'reader', '0', ms]))
  const done = await Promise.all([...writers, ...readers])
  for (const { code, stderr } of done) t.is(code, 0, stderr)
  const writes = done.slice(0, 3).map((r) => (r.messages[0] as { writes: number }).writes)
  const reads = done.slice(3).map((r) => r.messages[0] as { reads: number; bad: unknown[] })
  t.log(`writes per writer: ${writes.join(', ')}; full-list reads per reader: ${reads.map((r) => r.reads).join(', ')}`)
  for (const r of reads) t.deepEqual(r.bad, [])
  t.true(writes.every((w) => w > 1000))
})
