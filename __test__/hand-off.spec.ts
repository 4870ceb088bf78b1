// Handing a list or a segment to another process or worker: what travels is the name (toJSON),
// the items stay in the segment, and a message that lost its name is refused, never turned
// into a new empty list.
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'

import test from 'ava'

import { ShareableList, SharedMemory } from '../index'
import { FIXTURES } from './helpers.js'

function list(t: { teardown(fn: () => void): void }, items: number[]): ShareableList<number> {
  const sl = new ShareableList(items)
  t.teardown(() => {
    sl.close()
    sl.shm.unlink()
  })
  return sl
}

test('toJSON() is { name }, and open() takes it, a name, or the parsed JSON', (t) => {
  const sl = list(t, [1, 2, 3])
  t.deepEqual(sl.toJSON(), { name: sl.shm.name })
  t.is(JSON.stringify(sl), JSON.stringify({ name: sl.shm.name }))
  for (const handle of [ShareableList.open(sl.toJSON()), ShareableList.open(JSON.parse(JSON.stringify(sl))), ShareableList.open(sl.shm.name)]) {
    t.deepEqual(handle.toArray(), [1, 2, 3])
    handle.close()
  }
})

test('open() refuses an object without a string name', (t) => {
  for (const bad of [{}, { name: 42 }, [], null, 7]) {
    t.throws(() => ShareableList.open(bad as never), { code: 'ERR_INVALID_ARG_TYPE' }, JSON.stringify(bad))
  }
})

test('child.send(sl) passes the list by name: the child writes, the parent sees', async (t) => {
  const sl = list(t, [1, 2, 3, 4, 5])
  const child = fork(join(FIXTURES, 'receive-list.cjs'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  child.send(sl)
  const [answer] = await once(child, 'message')
  t.is(answer, 'done')
  t.deepEqual(await once(child, 'exit'), [0, null])
  t.deepEqual(sl.toArray(), [10, 20, 30, 40, 50])
})

test("with serialization: 'advanced', send toJSON(): the list itself arrives empty and is refused", async (t) => {
  const sl = list(t, [1, 2])
  // structuredClone is the serializer 'advanced' IPC and postMessage use.
  const cloned = structuredClone(sl) as unknown
  t.deepEqual(cloned, {})
  t.throws(() => ShareableList.open(cloned as never), { code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => new ShareableList(null, cloned as never), { code: 'ERR_INVALID_ARG_VALUE', message: /without a name and without a sequence/ })

  const child = fork(join(FIXTURES, 'receive-list.cjs'), [], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  child.send(sl.toJSON())
  t.is((await once(child, 'message'))[0], 'done')
  t.deepEqual(await once(child, 'exit'), [0, null])
  t.deepEqual(sl.toArray(), [10, 20])
})

test('a worker gets the list by postMessage(sl.toJSON()) and writes through to this thread', async (t) => {
  const sl = list(t, [7, 8])
  const worker = new Worker(join(FIXTURES, 'receive-list.cjs'))
  worker.postMessage(sl.toJSON())
  t.is((await once(worker, 'message'))[0], 'done')
  await worker.terminate()
  t.deepEqual(sl.toArray(), [70, 80])
})

test('postMessage(shm.buffer) copies (an external ArrayBuffer cannot be shared): post the name', async (t) => {
  const shm = SharedMemory.create(8)
  t.teardown(() => {
    shm.close()
    shm.unlink()
  })
  const worker = new Worker('require("node:worker_threads").parentPort.once("message", (b) => { new Uint8Array(b)[0] = 9; require("node:worker_threads").parentPort.postMessage(new Uint8Array(b)[0]) })', { eval: true })
  worker.postMessage(shm.buffer)
  t.is((await once(worker, 'message'))[0], 9, 'the worker wrote its copy')
  await worker.terminate()
  t.is(shm.buf[0], 0, 'the segment did not change')
  t.is(shm.buf.length, 8, 'and was not transferred away')
})

test('without a sequence, options must name a list; no options still makes an empty list', (t) => {
  t.throws(() => new ShareableList(null, {}), { code: 'ERR_INVALID_ARG_VALUE' })
  t.throws(() => new ShareableList(undefined, { track: false }), { code: 'ERR_INVALID_ARG_VALUE' })
  for (const sl of [new ShareableList(), new ShareableList(null), new ShareableList(null, null), new ShareableList([], { track: false })]) {
    t.is(sl.length, 0)
    sl.close()
    sl.shm.unlink()
  }
})
