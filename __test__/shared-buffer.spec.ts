import { join } from 'node:path'
import { Worker } from 'node:worker_threads'

import test from 'ava'

import { SharedMemory } from '../index.js'
import { FIXTURES, onlyWhere, runChild } from './helpers.js'

/** Node-API's experimental node_api_create_external_sharedarraybuffer: 22.23+, 24.16+, 26.1+. */
function nodeHasExternalSharedArrayBuffer(): boolean {
  const [major, minor] = process.versions.node.split('.').map(Number)
  return (major === 22 && minor >= 23) || (major === 24 && minor >= 16) || (major === 26 && minor >= 1) || major > 26
}

test('sharedBuffer is a SharedArrayBuffer over the mapping, or ERR_SHM_NO_SHARED_ARRAY_BUFFER', (t) => {
  const shm = SharedMemory.create(4096)
  t.teardown(() => {
    shm.close()
    shm.unlink()
  })
  if (!nodeHasExternalSharedArrayBuffer()) {
    t.throws(() => shm.sharedBuffer, { code: 'ERR_SHM_NO_SHARED_ARRAY_BUFFER', message: /node_api_create_external_sharedarraybuffer/ })
    return
  }
  const sab = shm.sharedBuffer
  t.true(sab instanceof SharedArrayBuffer)
  t.is(sab.byteLength, 4096)
  t.is(shm.sharedBuffer, sab)
  shm.buf[10] = 42
  t.is(new Uint8Array(sab)[10], 42)
  // Atomics.wait works on it within one process.
  t.is(Atomics.wait(new Int32Array(sab), 1, 0, 1), 'timed-out')
})

onlyWhere(nodeHasExternalSharedArrayBuffer(), 'this Node has no external SharedArrayBuffer')('sharedBuffer posted to a worker: Atomics.add from both threads gives the exact total', async (t) => {
  const shm = SharedMemory.create(4096)
  t.teardown(() => {
    shm.close()
    shm.unlink()
  })
  const COUNT = 200_000
  const worker = new Worker(join(FIXTURES, 'shared-buffer-adder.cjs'), { workerData: { sab: shm.sharedBuffer, count: COUNT } })
  const view = new Int32Array(shm.sharedBuffer)
  for (let i = 0; i < COUNT; i++) Atomics.add(view, 0, 1)
  await new Promise((resolve, reject) => worker.on('message', resolve).on('error', reject))
  t.is(Atomics.load(view, 0), 2 * COUNT)
  t.is(shm.buf.readInt32LE(0), 2 * COUNT)
})

onlyWhere(nodeHasExternalSharedArrayBuffer() && process.platform === 'linux', 'needs an external SharedArrayBuffer and /proc')('close() with a live SharedArrayBuffer defers the unmap until the buffer is collected', async (t) => {
  const { code, messages, stderr } = await runChild('shared-buffer-gc.cjs', [], { execArgv: ['--expose-gc'] })
  t.is(code, 0, stderr)
  t.deepEqual(messages, [{ afterClose: { value: 42, mapped: true }, mappedAfterGc: false, persisted: 42 }])
})
