import { fork } from 'node:child_process'
import { execFileSync, spawnSync } from 'node:child_process'
import { chmodSync, copyFileSync, mkdtempSync, readdirSync, rmSync, truncateSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import test from 'ava'

import { ShareableList, SharedMemory } from '../index.js'
import { FIXTURES, onlyWhere, uniqueName } from './helpers.js'

const onLinux = process.platform === 'linux'

test('a writer SIGKILLed mid-write leaves the list readable by everyone else', async (t) => {
  const sl = new ShareableList(['a'.repeat(16), 1, 2.5, null, true, Buffer.from('x'), 'b', 3])
  t.teardown(() => {
    sl.close()
    sl.shm.unlink()
  })
  for (let round = 0; round < 5; round++) {
    const child = fork(join(FIXTURES, 'list-writer.cjs'), [sl.shm.name], { execArgv: [] })
    await new Promise((resolve) => child.once('message', resolve))
    await new Promise((r) => setTimeout(r, 50 + round * 20))
    child.kill('SIGKILL')
    await new Promise((resolve) => child.once('exit', resolve))
    // A kill inside an item's locked section leaves that one item "mid-write" (documented in
    // README Guarantees); setting it again repairs it. Every other item reads normally.
    for (let i = 0; i < sl.length; i++) {
      try {
        sl.get(i)
      } catch (error) {
        // (t.like compares a RegExp by equality, so the message is checked on its own.)
        t.is((error as { code?: string }).code, 'ERR_SHM_CORRUPT')
        t.regex((error as Error).message, /stays mid-write/)
        sl.set(i, null)
        t.is(sl.get(i), null)
      }
    }
    const items = sl.toArray()
    t.is(items.length, 8)
    const again = ShareableList.open(sl.shm.name)
    t.is(again.format.length > 0, true)
    again.close()
  }
})

onlyWhere(onLinux, 'uses /dev/shm paths')('a segment truncated by a foreign process: touching a raw view past the end is SIGBUS', async (t) => {
  // Documented behaviour (as for C and CPython): shmkit cannot guard raw views against a
  // foreign ftruncate without a syscall per access. The process that touches the lost pages
  // dies with SIGBUS; this test proves it is that and nothing worse (and that others live).
  const name = uniqueName('trunc')
  const shm = SharedMemory.create(1 << 16, { name })
  t.teardown(() => shm.unlink())
  const child = fork(join(FIXTURES, 'touch-after-truncate.cjs'), [name], { execArgv: [], stdio: ['ignore', 'ignore', 'ignore', 'ipc'] })
  await new Promise((resolve) => child.once('message', resolve))
  truncateSync(join('/dev/shm', name), 0)
  child.send('touch')
  const [, signal] = await new Promise<[number | null, string | null]>((resolve) => child.once('exit', (c, s) => resolve([c, s])))
  t.is(signal, 'SIGBUS')
  shm.close()
})

test('names never reach outside /dev/shm', (t) => {
  for (const name of ['../etc/passwd', 'a/../../b', '..', '.', 'x/y']) {
    t.throws(() => SharedMemory.create(8, { name }), { code: 'ERR_SHM_INVALID_NAME' })
    t.throws(() => SharedMemory.open(name), { code: 'ERR_SHM_INVALID_NAME' })
  }
})

function otherUser(): string | null {
  if (!onLinux || process.getuid?.() !== 0) return null
  const user = 'shmkit_other'
  if (spawnSync('id', ['-u', user]).status !== 0) {
    const made = spawnSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', user])
    if (made.status !== 0) return null
  }
  return user
}

/**
 * A copy of the loader and binary that another user can read: the checkout may sit in a
 * directory only its owner can enter (a fresh `mktemp -d` clone is 0700).
 */
let staged = ''
function stagedPackage(): string {
  if (staged) return staged
  staged = mkdtempSync(join(tmpdir(), 'shmkit-other-user-'))
  const root = join(FIXTURES, '../..')
  for (const file of readdirSync(root).filter((f) => f === 'index.js' || f.endsWith('.node'))) {
    copyFileSync(join(root, file), join(staged, file))
    chmodSync(join(staged, file), 0o644)
  }
  chmodSync(staged, 0o755)
  return staged
}

test.after.always(() => {
  if (staged) rmSync(staged, { recursive: true, force: true })
})

function openAs(user: string, name: string): string {
  const script = `const { SharedMemory } = require(${JSON.stringify(join(stagedPackage(), 'index.js'))});
try { const s = SharedMemory.open(${JSON.stringify(name)}); s.buf[0] = 1; s.close(); console.log('opened') } catch (e) { console.log(e.code) }`
  return execFileSync('runuser', ['-u', user, '--', process.execPath, '-e', script], { encoding: 'utf8' }).trim()
}

test('another user cannot open a 0600 segment (EACCES); mode 0o666 shares it on purpose', (t) => {
  const user = otherUser()
  if (!user) {
    t.log('not root on Linux (or useradd is missing): skipping the second-user test')
    return t.pass()
  }
  const privateSegment = SharedMemory.create(64)
  const shared = SharedMemory.create(64, { mode: 0o666 })
  t.teardown(() => {
    privateSegment.unlink()
    shared.unlink()
  })
  t.is(openAs(user, privateSegment.name), 'EACCES')
  t.is(openAs(user, shared.name), 'opened')
  t.is(shared.buf[0], 1)
  privateSegment.close()
  shared.close()
})

test('a name another user created first is EEXIST, never adopted', (t) => {
  const user = otherUser()
  if (!user) return t.pass('needs root on Linux')
  const name = uniqueName('squat')
  const script = `const { SharedMemory } = require(${JSON.stringify(join(stagedPackage(), 'index.js'))});
SharedMemory.create(64, { name: ${JSON.stringify(name)}, track: false, mode: 0o666 }).close()`
  execFileSync('runuser', ['-u', user, '--', process.execPath, '-e', script])
  t.teardown(() => SharedMemory.open(name).unlink())
  t.throws(() => SharedMemory.create(64, { name }), { code: 'EEXIST' })
})
