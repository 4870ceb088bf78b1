// What one process sees of another's segments, where Windows differs from POSIX: a Windows
// section has no name of its own — it lives while any process holds a handle and is gone
// with the last one, and unlink() does nothing; a POSIX segment's name lives until
// shm_unlink, whoever holds it. Every test runs on both; each says what it expects where.
import { fork, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'

import test from 'ava'

import { SharedMemory, ShmLock } from '../index.js'
import { FIXTURES, runChild, uniqueName } from './helpers.js'

const onWindows = process.platform === 'win32'
const PAGE = 4096

function unlinkQuietly(name: string) {
  try {
    SharedMemory.open(name).unlink()
  } catch {}
}

function nextMessage<T>(child: ChildProcess): Promise<T> {
  return new Promise((resolve, reject) => {
    child.once('message', (m) => resolve(m as T))
    child.once('exit', (code) => reject(new Error(`child exited (${code}) before it reported`)))
  })
}

test('a child opens the segment by name and writes; the parent sees the bytes (Windows: the size rounds up to a page)', async (t) => {
  const shm = SharedMemory.create(100, { name: uniqueName('xwrite') })
  t.teardown(() => unlinkQuietly(shm.name))
  const { code, messages, stderr } = await runChild('child-writes.cjs', [shm.name, 'from the child'])
  t.is(code, 0, stderr)
  t.is(shm.buf.toString('utf8', 0, 14), 'from the child')
  t.is(shm.size, 100, 'the creator reports the size it asked for')
  const attached = (messages[0] as { size: number }).size
  if (onWindows) t.is(attached, PAGE, 'an attacher sees the section, which is whole pages')
  else if (process.platform === 'linux') t.is(attached, 100, 'Linux keeps the exact size')
  else t.is(attached % PAGE, 0, 'macOS rounds shm objects up to a page')
  shm.close()
})

test('a wait in this process is woken by a notify from another process', async (t) => {
  const shm = SharedMemory.create(PAGE)
  t.teardown(() => unlinkQuietly(shm.name))
  const words = new Int32Array(shm.buffer)
  // The child changes word 2 and notifies every 20 ms until told (word 3) that we woke. This
  // thread blocks in wait; a change that came before a wait is 'not-equal', so wait again on
  // the value seen now. Generous timeout: Node starts slowly under emulation (Wine, qemu).
  const child = runChild('notify-until-seen.cjs', [shm.name, '8'])
  let result: string
  do result = shm.wait(8, Atomics.load(words, 2), 60_000)
  while (result === 'not-equal')
  Atomics.store(words, 3, 1)
  t.is(result, 'ok')
  t.true(Atomics.load(words, 2) > 0)
  const { code, stderr, messages } = await child
  t.is(code, 0, stderr)
  t.true((messages[0] as { sent: number }).sent > 0)
  shm.close()
})

test('a lock holder killed in another process leaves the lock to the next locker as owner-died', async (t) => {
  const shm = SharedMemory.create(PAGE)
  t.teardown(() => unlinkQuietly(shm.name))
  const lock = ShmLock.create(shm, 0)
  const child = fork(join(FIXTURES, 'lock-holder.cjs'), [shm.name], { execArgv: [], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
  const report = await nextMessage<{ outcome: string; pid: number }>(child)
  t.is(report.outcome, 'acquired')
  t.is(lock.holder, report.pid)
  t.is(lock.tryLock(), 'busy')
  // SIGKILL on POSIX, TerminateProcess on Windows: the holder runs no code of ours on the way out.
  child.kill('SIGKILL')
  await new Promise((resolve) => child.once('exit', resolve))
  t.is(lock.lock(60_000), 'owner-died')
  lock.unlock()
  t.is(lock.lock(1000), 'acquired')
  lock.unlock()
  shm.close()
})

test('Windows: the name is gone once the last handle in any process closes; POSIX: it stays until unlink', async (t) => {
  const name = uniqueName('xlast')
  const shm = SharedMemory.create(PAGE, { name, track: false })
  t.teardown(() => unlinkQuietly(name))
  const child = fork(join(FIXTURES, 'hold-open.cjs'), [name, 'held'], { execArgv: [], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
  await nextMessage(child)
  // Our handle goes; the child's keeps the segment, and its name, alive on every OS.
  shm.close()
  const again = SharedMemory.open(name)
  t.is(again.buf.toString('utf8', 0, 4), 'held')
  again.close()
  const released = nextMessage(child)
  child.send('release')
  t.is(await released, 'released')
  await new Promise((resolve) => child.once('exit', resolve))
  if (onWindows) {
    // No handle is left anywhere: the section is destroyed, and with it the name.
    t.throws(() => SharedMemory.open(name), { code: 'ENOENT' })
  } else {
    // Nobody has it mapped, yet the name and the bytes stay until someone unlinks it.
    const kept = SharedMemory.open(name)
    t.is(kept.buf.toString('utf8', 0, 4), 'held')
    kept.unlink()
    kept.close()
    t.throws(() => SharedMemory.open(name), { code: 'ENOENT' })
  }
})

test('creating a name another process holds is EEXIST there, and leaves the segment intact', async (t) => {
  const name = uniqueName('xexist')
  const shm = SharedMemory.create(PAGE, { name })
  t.teardown(() => unlinkQuietly(name))
  shm.buf[0] = 42
  const { code, messages, stderr } = await runChild('race-create.cjs', [name])
  t.is(code, 0, stderr)
  t.deepEqual(messages, ['EEXIST'])
  t.is(shm.buf[0], 42)
  shm.close()
})
