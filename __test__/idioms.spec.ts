// What JS users reach for: Array's at(), a closed segment that says so in console.log, and
// exported objects that show only the API (no internals).
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { inspect } from 'node:util'

import test from 'ava'

import { ShareableList, SharedMemory, SharedMemoryManager, ShmLock, trackerPid } from '../index'

import { onlyWhere } from './helpers.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

test('at() is Array.prototype.at: negative from the end, undefined outside', (t) => {
  const sl = new ShareableList(['a', 'b', 'c'])
  t.teardown(() => {
    sl.close()
    sl.shm.unlink()
  })
  t.is(sl.at(-1), 'c')
  t.is(sl.at(-3), 'a')
  t.is(sl.at(0), 'a')
  t.is(sl.at(1.7), 'b')
  t.is(sl.at(Number.NaN), 'a')
  t.is(sl.at(3), undefined)
  t.is(sl.at(-4), undefined)
  t.is(sl.at(Number.POSITIVE_INFINITY), undefined)
  t.deepEqual([-3, -2, -1, 0, 1, 2, 3].map((i) => sl.at(i)), [-3, -2, -1, 0, 1, 2, 3].map((i) => ['a', 'b', 'c'].at(i)))
  t.throws(() => sl.at('1' as never), { code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => ShareableList.prototype.at.call({}, 0), { code: 'ERR_INVALID_ARG_TYPE', message: /ShareableList\.prototype\.at/ })
  sl.close()
  t.throws(() => sl.at(0), { code: 'ERR_SHM_CLOSED' })
})

test('console.log of a closed SharedMemory says it is closed', (t) => {
  const shm = SharedMemory.create(16)
  t.teardown(() => shm.unlink())
  t.is(inspect(shm), `SharedMemory(name='${shm.name}', size=16)`)
  shm.close()
  t.is(inspect(shm), `SharedMemory(<closed>, name='${shm.name}', size=16)`)
})

test('no internal helper shows on the classes: ShmLock has no _handleState, _pid, _wakeWaiter', (t) => {
  for (const klass of [SharedMemory, ShareableList, SharedMemoryManager, ShmLock]) {
    const own = Object.getOwnPropertyNames(klass.prototype).filter((key) => key.startsWith('_'))
    t.deepEqual(own, [], klass.name)
  }
  // The fast path they served still works.
  const shm = SharedMemory.create(8)
  t.teardown(() => {
    shm.close()
    shm.unlink()
  })
  const lock = ShmLock.create(shm, 0)
  t.is(lock.lock(), 'acquired')
  t.is(new Int32Array(shm.buffer)[0], process.pid)
  lock.unlock()
  t.is(new Int32Array(shm.buffer)[0], 0)
  lock.close()
})

test("the package entry keeps the loader's __napiBindingTarget out of sight but readable", (t) => {
  const require = createRequire(import.meta.url)
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'))
  const shmkit = require(join(ROOT, pkg.main))
  t.false(Object.keys(shmkit).includes('__napiBindingTarget'))
  t.true(Object.keys(shmkit).includes('ShareableList'))
  t.is(shmkit.__napiBindingTarget, 'native')
  t.false(inspect(shmkit).includes('__napiBindingTarget'))
})

onlyWhere(process.platform === 'linux', 'PR_SET_NAME is Linux only')('the cleanup helper is named shmkit-tracker (Linux: comm, what ps -e, top and pgrep show)', (t) => {
  const shm = SharedMemory.create(8)
  t.teardown(() => {
    shm.close()
    shm.unlink()
  })
  const pid = trackerPid()
  t.truthy(pid)
  t.is(readFileSync(`/proc/${pid}/comm`, 'utf8').trim(), 'shmkit-tracker')
  t.is(execFileSync('ps', ['-o', 'comm=', '-p', String(pid)], { encoding: 'utf8' }).trim(), 'shmkit-tracker')
})
