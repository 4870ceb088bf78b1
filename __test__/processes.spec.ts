import { Worker } from 'node:worker_threads'
import { join } from 'node:path'

import test from 'ava'

import { SharedMemory } from '../index.js'
import { FIXTURES, runChild, uniqueName } from './helpers.js'

test('child_process.fork: the child opens by name and writes, the parent sees it', async (t) => {
  const shm = SharedMemory.create(256)
  t.teardown(() => shm.unlink())
  const { code, messages, stderr } = await runChild('child-writes.cjs', [shm.name, 'written by the child'])
  t.is(code, 0, stderr)
  // Attaching sees the OS's size: exact on Linux, page-rounded on macOS and Windows.
  t.true((messages[0] as { size: number }).size >= 256)
  t.is(shm.buf.toString('utf8', 0, 20), 'written by the child')
  shm.close()
})

test('child_process.fork: a user-named segment passed via JSON', async (t) => {
  const shm = SharedMemory.create(64, { name: uniqueName('fork') })
  t.teardown(() => shm.unlink())
  const { name } = JSON.parse(JSON.stringify(shm))
  const { code, stderr } = await runChild('child-writes.cjs', [name, 'json'])
  t.is(code, 0, stderr)
  t.is(shm.buf.toString('utf8', 0, 4), 'json')
  shm.close()
})

test('worker_threads: a worker opens the segment by name and writes, the main thread sees it', async (t) => {
  const shm = SharedMemory.create(8 * 1024)
  t.teardown(() => shm.unlink())
  const mainView = new Float64Array(shm.buffer)
  const worker = new Worker(join(FIXTURES, 'worker-writes.cjs'), { workerData: { name: shm.name } })
  const reply = await new Promise((resolve, reject) => {
    worker.once('message', resolve)
    worker.once('error', reject)
  })
  const exitCode = await new Promise((resolve) => worker.once('exit', resolve))
  t.deepEqual(reply, { name: shm.name, size: 8 * 1024, sameBuf: true })
  t.is(exitCode, 0)
  t.is(mainView[1023], 1023 * 0.5)
  t.is(mainView[1], 0.5)
  // The worker's close() detached only its own view; ours still works.
  t.is(mainView.length, 1024)
  shm.close()
})

test('worker_threads: a worker terminated while holding views does not disturb the main thread', async (t) => {
  const shm = SharedMemory.create(4096)
  t.teardown(() => shm.unlink())
  const worker = new Worker(
    `const { SharedMemory } = require(${JSON.stringify(join(FIXTURES, '../../index.js'))});
     const { parentPort, workerData } = require('node:worker_threads');
     const shm = SharedMemory.open(workerData.name);
     globalThis.kept = [shm.buf, new Int32Array(shm.buffer)];
     shm.buf[0] = 77;
     parentPort.postMessage('ready');
     setInterval(() => {}, 1000);`,
    { eval: true, workerData: { name: shm.name } },
  )
  await new Promise((resolve) => worker.once('message', resolve))
  await worker.terminate()
  t.is(shm.buf[0], 77)
  shm.buf[1] = 1
  t.is(shm.buf[1], 1)
  shm.close()
})
