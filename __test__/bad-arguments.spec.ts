// One table of bad calls for every public method, run in one process: each throws its
// documented code, and the process is still alive and working at the end.
import test from 'ava'

import { createRequire } from 'node:module'

import { ShareableList, SharedMemory, SharedMemoryManager, ShmLock } from '../index.js'

import { uniqueName } from './helpers.js'

type Row = [string, () => unknown, string | RegExp]

test('every public method answers bad arguments with its documented code, in one process', (t) => {
  const shm = SharedMemory.create(64)
  const closed = SharedMemory.create(64)
  const keptBuffer = closed.buf
  closed.close()
  const sl = new ShareableList([1, 'two', null])
  const closedList = new ShareableList([1])
  closedList.close()
  const manager = new SharedMemoryManager()
  const shutDown = new SharedMemoryManager()
  shutDown.shutdown()
  const huge = 'x'.repeat(10_000_000)
  const lock = ShmLock.create(shm, 8)
  const any = (v: unknown) => v as never

  const rows: Row[] = [
    // SharedMemory.create / open / constructor
    ['create("64")', () => SharedMemory.create(any('64')), 'ERR_INVALID_ARG_TYPE'],
    ['create(null)', () => SharedMemory.create(any(null)), 'ERR_INVALID_ARG_TYPE'],
    ['create()', () => any(SharedMemory.create)(), 'ERR_INVALID_ARG_TYPE'],
    ['create(0)', () => SharedMemory.create(0), 'ERR_SHM_INVALID_SIZE'],
    ['create(-1)', () => SharedMemory.create(-1), 'ERR_SHM_INVALID_SIZE'],
    ['create(NaN)', () => SharedMemory.create(Number.NaN), 'ERR_SHM_INVALID_SIZE'],
    ['create(1e300)', () => SharedMemory.create(1e300), 'ERR_SHM_INVALID_SIZE'],
    ['create(2**52) (no such memory)', () => SharedMemory.create(2 ** 52), /ENOSPC|ENOMEM|EFBIG|EINVAL/],
    ['create(8, { name: 10 MB })', () => SharedMemory.create(8, { name: huge }), 'ERR_SHM_INVALID_NAME'],
    ['create(8, { name: "a\\0b" })', () => SharedMemory.create(8, { name: 'a\0b' }), 'ERR_SHM_INVALID_NAME'],
    ['create(8, { mode: -1 })', () => SharedMemory.create(8, { mode: -1 }), 'ERR_INVALID_ARG_VALUE'],
    ['create(8, { mode: 0o7777 })', () => SharedMemory.create(8, { mode: 0o7777 }), 'ERR_INVALID_ARG_VALUE'],
    ['create(8, { mode: NaN })', () => SharedMemory.create(8, { mode: Number.NaN }), 'ERR_INVALID_ARG_VALUE'],
    ['create(8, { mode: Infinity })', () => SharedMemory.create(8, { mode: Number.POSITIVE_INFINITY }), 'ERR_INVALID_ARG_VALUE'],
    ['create(8, { mode: 1.5 })', () => SharedMemory.create(8, { mode: 1.5 }), 'ERR_INVALID_ARG_VALUE'],
    ['create(8, { mode: 2**32 + 0o666 })', () => SharedMemory.create(8, { mode: 2 ** 32 + 0o666 }), 'ERR_INVALID_ARG_VALUE'],
    ['create(8, { mode: "600" })', () => SharedMemory.create(8, { mode: any('600') }), 'ERR_INVALID_ARG_TYPE'],
    ['new SharedMemory({ create: true, size: 8, mode: 1.5 })', () => new SharedMemory({ create: true, size: 8, mode: 1.5 }), 'ERR_INVALID_ARG_VALUE'],
    ['create(8, "opts")', () => SharedMemory.create(8, any('opts')), 'ERR_INVALID_ARG_TYPE'],
    ['open(42)', () => SharedMemory.open(any(42)), 'ERR_INVALID_ARG_TYPE'],
    ['open()', () => any(SharedMemory.open)(), 'ERR_INVALID_ARG_TYPE'],
    // wait / waitAsync / notify
    ['shm.wait("0", 1)', () => shm.wait(any('0'), 1), 'ERR_INVALID_ARG_TYPE'],
    ['shm.wait(0, "1")', () => shm.wait(0, any('1')), 'ERR_INVALID_ARG_TYPE'],
    ['shm.wait(0, 1, "5")', () => shm.wait(0, 1, any('5')), 'ERR_INVALID_ARG_TYPE'],
    ['shm.wait(0, 1, -1)', () => shm.wait(0, 1, -1), 'ERR_OUT_OF_RANGE'],
    ['shm.wait(0, 1, NaN)', () => shm.wait(0, 1, Number.NaN), 'ERR_OUT_OF_RANGE'],
    ['shm.waitAsync({}, 1)', () => shm.waitAsync(any({}), 1), 'ERR_INVALID_ARG_TYPE'],
    ['shm.notify("0")', () => shm.notify(any('0')), 'ERR_INVALID_ARG_TYPE'],
    ['shm.notify(0, "all")', () => shm.notify(0, any('all')), 'ERR_INVALID_ARG_TYPE'],
    // ShmLock
    ['ShmLock.create({}, 0)', () => ShmLock.create(any({}), 0), 'ERR_INVALID_ARG_TYPE'],
    ['ShmLock.create(sl, 0)', () => ShmLock.create(any(sl), 0), 'ERR_INVALID_ARG_TYPE'],
    ['ShmLock.open(shm, "0")', () => ShmLock.open(shm, any('0')), 'ERR_INVALID_ARG_TYPE'],
    ['lock.lock("5")', () => lock.lock(any('5')), 'ERR_INVALID_ARG_TYPE'],
    ['lock.lockAsync(-1)', () => lock.lockAsync(-1), 'ERR_OUT_OF_RANGE'],
    // A method called on another object, and a class called without `new`
    ['SharedMemory.prototype.close.call({})', () => SharedMemory.prototype.close.call(any({})), 'ERR_INVALID_ARG_TYPE'],
    ['SharedMemory.prototype.unlink.call(sl)', () => SharedMemory.prototype.unlink.call(any(sl)), 'ERR_INVALID_ARG_TYPE'],
    ['buf getter on {}', () => Object.getOwnPropertyDescriptor(SharedMemory.prototype, 'buf')!.get!.call({}), 'ERR_INVALID_ARG_TYPE'],
    ['ShareableList.prototype.count.call(shm, 1)', () => ShareableList.prototype.count.call(any(shm), 1), 'ERR_INVALID_ARG_TYPE'],
    ['ShmLock.prototype.unlock.call(shm)', () => ShmLock.prototype.unlock.call(any(shm)), 'ERR_INVALID_ARG_TYPE'],
    ['SharedMemoryManager.prototype.shutdown.call({})', () => SharedMemoryManager.prototype.shutdown.call(any({})), 'ERR_INVALID_ARG_TYPE'],
    ['SharedMemory({ name }) without new', () => any(SharedMemory)({ name: shm.name }), 'ERR_CONSTRUCT_CALL_REQUIRED'],
    ['ShareableList([1]) without new', () => any(ShareableList)([1]), 'ERR_CONSTRUCT_CALL_REQUIRED'],
    ['SharedMemoryManager() without new', () => any(SharedMemoryManager)(), 'ERR_CONSTRUCT_CALL_REQUIRED'],
    ['open(10 MB name)', () => SharedMemory.open(huge), 'ERR_SHM_INVALID_NAME'],
    ['open("../x")', () => SharedMemory.open('../x'), 'ERR_SHM_INVALID_NAME'],
    ['new SharedMemory({})', () => new SharedMemory({}), 'ERR_SHM_INVALID_NAME'],
    ['new SharedMemory({ create: true, size: -5 })', () => new SharedMemory({ create: true, size: -5 }), 'ERR_SHM_INVALID_SIZE'],
    // A closed SharedMemory
    ['closed.buf', () => closed.buf, 'ERR_SHM_CLOSED'],
    ['closed.buffer', () => closed.buffer, 'ERR_SHM_CLOSED'],
    // ShareableList
    ['new ShareableList(42)', () => new ShareableList(any(42)), 'ERR_INVALID_ARG_TYPE'],
    ['new ShareableList([{}])', () => new ShareableList([any({})]), 'ERR_SHM_UNSUPPORTED_TYPE'],
    ['new ShareableList([undefined])', () => new ShareableList([any(undefined)]), 'ERR_SHM_UNSUPPORTED_TYPE'],
    ['new ShareableList([2n ** 64n])', () => new ShareableList([2n ** 64n]), 'ERR_OUT_OF_RANGE'],
    ['new ShareableList(["x".repeat(10 MB)])', () => new ShareableList([huge]), 'ERR_SHM_VALUE_TOO_LARGE'],
    ['new ShareableList([a detached buffer])', () => new ShareableList([keptBuffer]), /^$|ERR_/],
    ['ShareableList.open(missing)', () => ShareableList.open('shmkit_missing_bad_args'), 'ENOENT'],
    ['ShareableList.open(10 MB name)', () => ShareableList.open(huge), 'ERR_SHM_INVALID_NAME'],
    ['sl.get(3)', () => sl.get(3), 'ERR_OUT_OF_RANGE'],
    ['sl.get(-4)', () => sl.get(-4), 'ERR_OUT_OF_RANGE'],
    ['sl.get(2 ** 64)', () => sl.get(2 ** 64), 'ERR_OUT_OF_RANGE'],
    ['sl.get(NaN)', () => sl.get(Number.NaN), 'ERR_OUT_OF_RANGE'],
    ['sl.get("0")', () => sl.get(any('0')), 'ERR_INVALID_ARG_TYPE'],
    ['ShareableList.open(42)', () => ShareableList.open(any(42)), 'ERR_INVALID_ARG_TYPE'],
    ['new ShareableList(null, "opts")', () => new ShareableList(null, any('opts')), 'ERR_INVALID_ARG_TYPE'],
    ['sl.get({})', () => sl.get(any({})), 'ERR_INVALID_ARG_TYPE'],
    ['sl.set(0, {})', () => sl.set(0, any({})), 'ERR_SHM_UNSUPPORTED_TYPE'],
    ['sl.set(0, Symbol())', () => sl.set(0, any(Symbol('s'))), 'ERR_SHM_UNSUPPORTED_TYPE'],
    ['sl.set(1, "too long for its slot")', () => sl.set(1, 'too long for its slot'), 'ERR_SHM_VALUE_TOO_LARGE'],
    ['sl.set(0, 2n ** 63n)', () => sl.set(0, 2n ** 63n), 'ERR_OUT_OF_RANGE'],
    ['sl.set(99, 1)', () => sl.set(99, 1), 'ERR_OUT_OF_RANGE'],
    ['sl.count(() => 1)', () => sl.count(any(() => 1)), 'ERR_SHM_UNSUPPORTED_TYPE'],
    ['sl.index("absent")', () => sl.index('absent'), 'ERR_SHM_VALUE_NOT_FOUND'],
    ['ShareableList.prototype.get.call(shm, 0)', () => ShareableList.prototype.get.call(any(shm), 0), 'ERR_INVALID_ARG_TYPE'],
    ['closedList.get(0)', () => closedList.get(0), 'ERR_SHM_CLOSED'],
    ['closedList.set(0, 1)', () => closedList.set(0, 1), 'ERR_SHM_CLOSED'],
    ['closedList.toArray()', () => closedList.toArray(), 'ERR_SHM_CLOSED'],
    ['closedList.format', () => closedList.format, 'ERR_SHM_CLOSED'],
    ['closedList.count(1)', () => closedList.count(1), 'ERR_SHM_CLOSED'],
    ['closedList.index(1)', () => closedList.index(1), 'ERR_SHM_CLOSED'],
    // SharedMemoryManager
    ['manager.SharedMemory(0)', () => manager.SharedMemory(0), 'ERR_SHM_INVALID_SIZE'],
    ['manager.SharedMemory("8")', () => manager.SharedMemory(any('8')), 'ERR_INVALID_ARG_TYPE'],
    ['manager.ShareableList(5)', () => manager.ShareableList(any(5)), 'ERR_INVALID_ARG_TYPE'],
    ['manager.ShareableList([{}])', () => manager.ShareableList([any({})]), 'ERR_SHM_UNSUPPORTED_TYPE'],
    ['shutDown.SharedMemory(8)', () => shutDown.SharedMemory(8), 'ERR_SHM_CLOSED'],
    ['shutDown.ShareableList([1])', () => shutDown.ShareableList([1]), 'ERR_SHM_CLOSED'],
    ['shutDown.start()', () => shutDown.start(), 'ERR_SHM_CLOSED'],
  ]

  for (const [what, call, code] of rows) {
    let thrown: unknown
    try {
      call()
    } catch (err) {
      thrown = err
    }
    if (what.includes('detached buffer')) {
      // A detached Buffer is simply empty bytes: accepted, or refused cleanly.
      if (thrown) t.true(thrown instanceof Error, what)
      continue
    }
    t.true(thrown instanceof Error, `${what} should throw`)
    const got = (thrown as { code?: string }).code ?? ''
    if (got === 'ERR_INVALID_ARG_TYPE' || got === 'ERR_CONSTRUCT_CALL_REQUIRED') t.true(thrown instanceof TypeError, `${what}: a TypeError`)
    if (typeof code === 'string') t.is(got, code, what)
    else t.regex(got, code, what)
    t.true((thrown as Error).message.length < 500, `${what}: a short message`)
  }

  // Still alive, still working, nothing changed by the failures.
  t.deepEqual(sl.toArray(), [1, 'two', null])
  shm.buf[0] = 9
  t.is(SharedMemory.open(shm.name).buf[0], 9)
  t.deepEqual(manager.segments, [])
  for (const list of ShareableListLeftovers()) list.close()
  sl.close()
  sl.shm.unlink()
  closedList.shm.unlink()
  lock.close()
  shm.close()
  shm.unlink()
  closed.unlink()
  manager.shutdown()

  function ShareableListLeftovers(): ShareableList[] {
    return []
  }
})

test('a class called without new has no side effect: no segment is made or opened', (t) => {
  const name = uniqueName('nonew')
  const any = (v: unknown) => v as never
  t.throws(() => any(SharedMemory)({ name, create: true, size: 64 }), { code: 'ERR_CONSTRUCT_CALL_REQUIRED', instanceOf: TypeError })
  t.throws(() => any(ShareableList)([1, 2], { name }), { code: 'ERR_CONSTRUCT_CALL_REQUIRED', instanceOf: TypeError })
  t.throws(() => SharedMemory.open(name), { code: 'ENOENT' })
  t.false('name' in globalThis && (globalThis as { name?: unknown }).name === name)
  // The guarded classes are still the classes: instanceof, constructor, statics, subclassing.
  const shm = new SharedMemory({ name, create: true, size: 64 })
  t.teardown(() => shm.unlink())
  t.true(shm instanceof SharedMemory)
  t.is(shm.constructor, SharedMemory)
  t.true(SharedMemory.open(name) instanceof SharedMemory)
  class Sub extends SharedMemory {}
  const sub = new Sub({ name })
  t.true(sub instanceof SharedMemory)
  // An attacher sees the OS's size: exact on Linux, whole pages on macOS and Windows.
  if (process.platform === 'linux') t.is(sub.size, 64)
  else t.true(sub.size >= 64 && sub.size % 4096 === 0, `size ${sub.size}`)
  sub.close()
  shm.close()
})

test('huge finite timeouts mean "for ever", never a crash', async (t) => {
  const shm = SharedMemory.create(64)
  t.teardown(() => shm.unlink())
  // The word holds 0, so a wait for 1 returns at once, whatever the timeout.
  t.is(shm.wait(0, 1, 1e300), 'not-equal')
  t.is(shm.wait(0, 1, Number.MAX_VALUE), 'not-equal')
  t.is(await shm.waitAsync(0, 1, 1e23), 'not-equal')
  // Contended: a second handle waits with a huge timeout until the first lets go.
  const first = ShmLock.create(shm, 8)
  const second = ShmLock.open(shm, 8)
  t.is(first.lock(1e300), 'acquired')
  const waiting = second.lockAsync(1e300)
  setTimeout(() => first.unlock(), 50)
  t.is(await waiting, 'acquired')
  second.unlock()
  first.close()
  second.close()
  shm.close()
})

test('a panic inside shmkit becomes ERR_SHM_PANIC, sync and async, and the process goes on', async (t) => {
  // Not exported by name (not API): reach it through the CommonJS binding object.
  const binding = createRequire(import.meta.url)('../index.js') as { _panicForTests(kind: string): unknown }
  const hooks = binding._panicForTests
  t.throws(() => hooks('sync'), { code: 'ERR_INVALID_ARG_VALUE' }, 'off unless SHMKIT_TEST_HOOKS=1')
  process.env.SHMKIT_TEST_HOOKS = '1'
  t.teardown(() => delete process.env.SHMKIT_TEST_HOOKS)
  t.throws(() => hooks('sync'), { code: 'ERR_SHM_PANIC', message: /panic requested by a test/ })
  await t.throwsAsync(hooks('async') as Promise<unknown>, { code: 'ERR_SHM_PANIC' })
  const shm = SharedMemory.create(8)
  shm.buf[0] = 1
  t.is(shm.buf[0], 1)
  shm.close()
  shm.unlink()
})
