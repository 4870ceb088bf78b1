import { execFileSync, fork } from 'node:child_process'
import { join } from 'node:path'
import { inspect } from 'node:util'

import test from 'ava'

import { ShareableList, SharedMemory, SharedMemoryManager } from '../index.js'
import { FIXTURES, onlyWhere, runChild } from './helpers.js'

const exists = (name: string) => {
  try {
    SharedMemory.open(name).close()
    return true
  } catch (err) {
    if ((err as { code: string }).code === 'ENOENT') return false
    throw err
  }
}

// Ported from CPython's _TestSharedMemory.test_shared_memory_SharedMemoryManager_basics.
test('segments are gone after shutdown(); handles already held stay readable', (t) => {
  const smm = new SharedMemoryManager()
  t.is(smm.start(), smm)
  t.is(smm.start(), smm, 'a second start() is harmless')
  const lol = Array.from({ length: 5 }, (_, i) => smm.ShareableList(['howdy', i]))
  const lom = Array.from({ length: 5 }, () => smm.SharedMemory(128))
  const doppleganger = ShareableList.open(lol[0].shm.name)
  t.is(doppleganger.length, 2, 'a list attached by name from a manager-made segment')
  t.deepEqual(doppleganger.toArray(), ['howdy', 0])
  doppleganger.close()
  t.deepEqual(smm.segments.sort(), [...lol.map((l) => l.shm.name), ...lom.map((s) => s.name)].sort())
  lom[0].buf.write('still readable')
  smm.shutdown()
  t.true(smm.closed)
  // On Windows a section lives while any handle is open: check once ours are closed.
  if (process.platform !== 'win32') {
    for (const name of [...lol.map((l) => l.shm.name), ...lom.map((s) => s.name)]) t.false(exists(name), name)
  }
  t.is(lom[0].buf.toString('utf8', 0, 14), 'still readable')
  t.is(lol[1].get(1), 1)
  t.notThrows(() => smm.shutdown(), 'shutdown() is idempotent')
  t.deepEqual(smm.segments, [])
  t.throws(() => smm.SharedMemory(8), { code: 'ERR_SHM_CLOSED' })
  t.throws(() => smm.ShareableList([1]), { code: 'ERR_SHM_CLOSED' })
  t.throws(() => smm.start(), { code: 'ERR_SHM_CLOSED' })
  for (const s of lom) s.close()
  for (const l of lol) l.close()
  for (const name of [...lol.map((l) => l.shm.name), ...lom.map((s) => s.name)]) t.false(exists(name), name)
})

test('segments are gone after the using block (Windows: once the handles it handed out are closed too)', (t) => {
  let names: string[] = []
  let handedOut: Array<{ close(): void }> = []
  {
    using smm = new SharedMemoryManager()
    const sl = smm.ShareableList(['howdy', 42])
    const shm = smm.SharedMemory(64)
    names = [sl.shm.name, shm.name]
    handedOut = [sl, shm]
    t.true(names.every(exists))
  }
  if (process.platform === 'win32') {
    // A section lives while any handle is open: the ones handed out keep these alive.
    t.true(names.every(exists))
    for (const handle of handedOut) handle.close()
  }
  t.false(names.some(exists))
})

test('bad sizes and sequences through the manager fail cleanly and create nothing', (t) => {
  using smm = new SharedMemoryManager()
  t.throws(() => smm.SharedMemory(0), { code: 'ERR_SHM_INVALID_SIZE' })
  t.throws(() => smm.SharedMemory(-5), { code: 'ERR_SHM_INVALID_SIZE' })
  t.throws(() => smm.ShareableList([{} as never]), { code: 'ERR_SHM_UNSUPPORTED_TYPE' })
  t.throws(() => smm.ShareableList(5 as never), { code: 'ERR_INVALID_ARG_TYPE' })
  t.deepEqual(smm.segments, [])
  t.is(smm.ShareableList().length, 0)
  t.is(smm.segments.length, 1)
})

test('console.log shows the manager’s segments', (t) => {
  const smm = new SharedMemoryManager()
  const shm = smm.SharedMemory(16)
  t.is(inspect(smm), `SharedMemoryManager([ '${shm.name}' ])`)
  smm.shutdown()
  t.is(inspect(smm), 'SharedMemoryManager(shut down)')
  shm.close()
})

test('garbage collection of a manager and all its segments unlinks them', async (t) => {
  const { code, stderr, messages } = await runChild('manager-gc.cjs', [], { execArgv: ['--expose-gc'] })
  t.is(code, 0, stderr)
  const [{ names, beforeGc, afterGc, heldAfterGc }] = messages as Array<{
    names: string[]
    beforeGc: boolean[]
    afterGc: boolean[]
    heldAfterGc: boolean
  }>
  t.is(names.length, 3)
  t.deepEqual(beforeGc, [true, true, true])
  t.deepEqual(afterGc, [false, false, false])
  t.true(heldAfterGc, 'a manager kept alive by a segment it handed out keeps its segments')
})

onlyWhere(process.platform === 'linux', 'identity is compared where the OS gives shm objects an inode (Linux)')("shutdown() leaves alone a segment another process re-created under one of the manager's names", async (t) => {
  // A: a manager in its own process makes a segment.
  const a = fork(join(FIXTURES, 'recreated-name.cjs'), ['manager'], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] })
  a.stderr!.resume()
  const next = () => new Promise<unknown>((resolve) => a.once('message', resolve))
  const { name } = (await next()) as { name: string }
  t.teardown(() => {
    a.kill('SIGKILL')
    try {
      SharedMemory.open(name).unlink()
    } catch {}
  })
  const index = JSON.stringify(join(FIXTURES, '../../index.js'))
  const run = (code: string) =>
    execFileSync(process.execPath, ['-e', `const { SharedMemory } = require(${index}); ${code}`, name], { stdio: 'inherit' })
  run('SharedMemory.open(process.argv[1]).unlink()') // B attaches and unlinks
  run('SharedMemory.create(8192, { name: process.argv[1], track: false }).close()') // C re-creates, untracked
  a.send('shutdown')
  t.is(await next(), 'done')
  t.true(exists(name), "A's shutdown deleted C's segment")
  const exited = new Promise((resolve) => a.once('exit', resolve))
  a.send('exit')
  await exited
  await new Promise((r) => setTimeout(r, 300))
  t.true(exists(name), "A's exit deleted C's segment")
  const survivor = SharedMemory.open(name)
  t.is(survivor.size, 8192)
  survivor.close()
})
