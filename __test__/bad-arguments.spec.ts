// One table of bad calls for every public method, run in one process: each throws its
// documented code, and the process is still alive and working at the end.
import test from 'ava'

import { ShareableList, SharedMemory, SharedMemoryManager } from '../index.js'

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
  const any = (v: unknown) => v as never

  const rows: Row[] = [
    // SharedMemory.create / open / constructor
    ['create("64")', () => SharedMemory.create(any('64')), /InvalidArg|ERR_INVALID_ARG_TYPE|NumberExpected/],
    ['create(null)', () => SharedMemory.create(any(null)), /InvalidArg|ERR_INVALID_ARG_TYPE|NumberExpected/],
    ['create(0)', () => SharedMemory.create(0), 'ERR_SHM_INVALID_SIZE'],
    ['create(-1)', () => SharedMemory.create(-1), 'ERR_SHM_INVALID_SIZE'],
    ['create(NaN)', () => SharedMemory.create(Number.NaN), 'ERR_SHM_INVALID_SIZE'],
    ['create(1e300)', () => SharedMemory.create(1e300), 'ERR_SHM_INVALID_SIZE'],
    ['create(2**52) (no such memory)', () => SharedMemory.create(2 ** 52), /ENOSPC|ENOMEM|EFBIG|EINVAL/],
    ['create(8, { name: 10 MB })', () => SharedMemory.create(8, { name: huge }), 'ERR_SHM_INVALID_NAME'],
    ['create(8, { name: "a\\0b" })', () => SharedMemory.create(8, { name: 'a\0b' }), 'ERR_SHM_INVALID_NAME'],
    ['create(8, { mode: -1 })', () => SharedMemory.create(8, { mode: -1 }), /InvalidArg|ERR_INVALID_ARG/],
    ['create(8, { mode: 0o7777 })', () => SharedMemory.create(8, { mode: 0o7777 }), 'ERR_INVALID_ARG_VALUE'],
    ['create(8, "opts")', () => SharedMemory.create(8, any('opts')), /InvalidArg|ERR_INVALID_ARG_TYPE|ObjectExpected/],
    ['open(42)', () => SharedMemory.open(any(42)), /InvalidArg|ERR_INVALID_ARG_TYPE|StringExpected/],
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
    ['manager.SharedMemory("8")', () => manager.SharedMemory(any('8')), /InvalidArg|ERR_INVALID_ARG_TYPE|NumberExpected/],
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
  shm.close()
  shm.unlink()
  closed.unlink()
  manager.shutdown()

  function ShareableListLeftovers(): ShareableList[] {
    return []
  }
})
