import { spawnSync } from 'node:child_process'
import { readFileSync, statfsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { inspect } from 'node:util'

import test from 'ava'

import { SharedMemory } from '../index.js'
import { devShmMode, existsInDevShm, onlyWhere, runChild, uniqueName } from './helpers.js'

const onLinux = process.platform === 'linux'

test('create gives a psm_ name, the exact size and zeroed memory', (t) => {
  const shm = SharedMemory.create(1000)
  t.teardown(() => shm.unlink())
  t.regex(shm.name, process.platform === 'win32' ? /^wnsm_[0-9a-f]{16}$/ : /^psm_[0-9a-f]{16}$/)
  t.true(shm.size >= 1000)
  if (onLinux) t.is(shm.size, 1000)
  t.is(shm.buf.length, shm.size)
  t.true(shm.buf.every((b) => b === 0))
  t.false(shm.closed)
  t.true(shm.track)
  shm.close()
})

test('two handles on one name see each other’s writes', (t) => {
  const name = uniqueName('two')
  const a = new SharedMemory({ name, create: true, size: 4096 })
  t.teardown(() => a.unlink())
  const b = new SharedMemory({ name })
  t.is(b.name, name)
  t.false(b.track, 'attaching never tracks')
  a.buf.write('hello from a', 0)
  t.is(b.buf.toString('utf8', 0, 12), 'hello from a')
  new Float64Array(b.buffer)[10] = Math.PI
  t.is(new Float64Array(a.buffer)[10], Math.PI)
  a.close()
  b.close()
})

test('buf and buffer are zero-copy and the same objects on every access', (t) => {
  const shm = SharedMemory.create(64)
  t.teardown(() => shm.unlink())
  t.is(shm.buf, shm.buf)
  t.is(shm.buffer, shm.buffer)
  t.is(shm.buf.buffer, shm.buffer)
  t.true(Buffer.isBuffer(shm.buf))
  t.true(shm.buffer instanceof ArrayBuffer)
  shm.buf[3] = 7
  t.is(new Uint8Array(shm.buffer)[3], 7)
  shm.close()
})

test('a leading slash names the same segment; name is shown without it', (t) => {
  const name = uniqueName('slash')
  const a = SharedMemory.create(16, { name })
  t.teardown(() => a.unlink())
  const b = SharedMemory.open(`/${name}`)
  t.is(b.name, name)
  a.close()
  b.close()
})

test('toJSON and JSON.stringify give name and size', (t) => {
  const shm = SharedMemory.create(100)
  t.teardown(() => shm.unlink())
  t.deepEqual(shm.toJSON(), { name: shm.name, size: shm.size })
  t.deepEqual(JSON.parse(JSON.stringify(shm)), { name: shm.name, size: shm.size })
  shm.close()
})

test('console.log shows what Python’s repr shows', (t) => {
  const shm = SharedMemory.create(1024)
  t.teardown(() => shm.unlink())
  t.is(inspect(shm), `SharedMemory(name='${shm.name}', size=1024)`)
  shm.close()
})

test('close detaches every view, twice is a no-op, buf after close throws ERR_SHM_CLOSED', (t) => {
  const shm = SharedMemory.create(4096)
  t.teardown(() => shm.unlink())
  const buf = shm.buf
  const floats = new Float64Array(shm.buffer)
  const view = new DataView(shm.buffer)
  buf[0] = 1
  shm.close()
  t.true(shm.closed)
  t.is(buf.length, 0)
  t.is(floats.length, 0)
  t.is(floats[0], undefined)
  t.throws(() => view.getUint8(0), { instanceOf: TypeError })
  t.notThrows(() => shm.close())
  t.throws(() => shm.buf, { code: 'ERR_SHM_CLOSED', message: new RegExp(shm.name) })
  t.throws(() => shm.buffer, { code: 'ERR_SHM_CLOSED' })
})

test('using closes the segment at the end of the block', (t) => {
  let kept: SharedMemory
  let buf: Buffer
  {
    using shm = SharedMemory.create(64)
    kept = shm
    buf = shm.buf
    shm.unlink()
  }
  t.true(kept.closed)
  t.is(buf.length, 0)
})

const onWindows = process.platform === 'win32'

onlyWhere(!onWindows, 'unlink() is a no-op on Windows, as in CPython')('unlink works after close and removes the name; a second unlink is ENOENT', (t) => {
  const shm = SharedMemory.create(64)
  const name = shm.name
  shm.close()
  shm.unlink()
  t.throws(() => SharedMemory.open(name), { code: 'ENOENT' })
  t.throws(() => shm.unlink(), { code: 'ENOENT' })
})

onlyWhere(!onWindows, 'unlink() is a no-op on Windows, as in CPython')('a segment unlinked while mapped stays usable through existing handles', (t) => {
  const a = SharedMemory.create(64)
  const b = SharedMemory.open(a.name)
  a.unlink()
  a.buf[1] = 99
  t.is(b.buf[1], 99)
  t.throws(() => SharedMemory.open(a.name), { code: 'ENOENT' })
  a.close()
  b.close()
})

test('views kept after the handle is garbage collected stay valid', (t) => {
  const name = uniqueName('gc')
  let buf: Buffer
  {
    const shm = SharedMemory.create(32, { name })
    buf = shm.buf
  }
  // The handle is unreachable now; the Buffer alone keeps the mapping.
  buf[31] = 5
  t.is(buf[31], 5)
  t.is(buf.length, 32)
  SharedMemory.open(name).unlink()
})

const modeName = uniqueName('mode')
const badCalls: Array<[string, () => unknown, string, string?]> = [
  ['create(0)', () => SharedMemory.create(0), 'ERR_SHM_INVALID_SIZE'],
  ['create(-1)', () => SharedMemory.create(-1), 'ERR_SHM_INVALID_SIZE'],
  ['create(1.5)', () => SharedMemory.create(1.5), 'ERR_SHM_INVALID_SIZE'],
  ['create(NaN)', () => SharedMemory.create(Number.NaN), 'ERR_SHM_INVALID_SIZE'],
  ['create(Infinity)', () => SharedMemory.create(Number.POSITIVE_INFINITY), 'ERR_SHM_INVALID_SIZE'],
  ['create(2**53)', () => SharedMemory.create(2 ** 53), 'ERR_SHM_INVALID_SIZE'],
  ['new SharedMemory({create: true}) without size', () => new SharedMemory({ create: true }), 'ERR_SHM_INVALID_SIZE'],
  ['new SharedMemory() without name', () => new SharedMemory(), 'ERR_SHM_INVALID_NAME'],
  ['open("")', () => SharedMemory.open(''), 'ERR_SHM_INVALID_NAME'],
  ['open("/")', () => SharedMemory.open('/'), 'ERR_SHM_INVALID_NAME'],
  ['open("a/b")', () => SharedMemory.open('a/b'), 'ERR_SHM_INVALID_NAME'],
  ['open("..")', () => SharedMemory.open('..'), 'ERR_SHM_INVALID_NAME'],
  ['open("a\\0b")', () => SharedMemory.open('a\0b'), 'ERR_SHM_INVALID_NAME'],
  ['open(10 MB name)', () => SharedMemory.open('x'.repeat(10_000_000)), 'ERR_SHM_INVALID_NAME'],
  ['create with a name containing /', () => SharedMemory.create(10, { name: 'shmkit_x/y' }), 'ERR_SHM_INVALID_NAME'],
  ['create with a too-long name', () => SharedMemory.create(10, { name: 'x'.repeat(300) }), 'ERR_SHM_INVALID_NAME'],
  ['create with mode 0o1000', () => SharedMemory.create(10, { name: modeName, mode: 0o1000 }), 'ERR_INVALID_ARG_VALUE', modeName],
  ['open of a missing name', () => SharedMemory.open(uniqueName('missing')), 'ENOENT'],
]

// "Creates nothing": other spec files create segments in parallel processes, so /dev/shm as a
// whole cannot be compared here. A named create must leave no such name; any create would map
// its segment into this process; and the suite ends by failing on any psm_ entry left behind.
const mappedSegments = () =>
  onLinux ? readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes('/dev/shm/')).length : 0

for (const [what, call, code, name] of badCalls) {
  test(`bad input: ${what} throws ${code} and creates nothing`, (t) => {
    const mapped = mappedSegments()
    const err = t.throws(call, { code })
    t.true(err instanceof Error)
    t.true(err!.message.length > 0 && err!.message.length < 400, err!.message)
    t.is(mappedSegments(), mapped)
    if (name && onLinux) t.false(existsInDevShm(name))
  })
}

test('create with a taken name throws EEXIST and leaves the original intact', (t) => {
  const name = uniqueName('exists')
  const shm = SharedMemory.create(64, { name })
  t.teardown(() => shm.unlink())
  shm.buf[0] = 42
  t.throws(() => SharedMemory.create(64, { name }), { code: 'EEXIST', message: new RegExp(name) })
  t.throws(() => new SharedMemory({ name, create: true, size: 8 }), { code: 'EEXIST' })
  if (onLinux) {
    // Larger than what /dev/shm has left: the taken name is still what is reported.
    const { bavail, bsize } = statfsSync('/dev/shm')
    t.throws(() => SharedMemory.create(bavail * bsize + 2 ** 30, { name }), { code: 'EEXIST' })
  }
  t.is(SharedMemory.open(name).buf[0], 42)
  shm.close()
})

onlyWhere(onLinux, 'no /dev/shm on this OS')('a created segment is mode 0600 in /dev/shm', (t) => {
  const shm = SharedMemory.create(64)
  t.teardown(() => shm.unlink())
  t.is(devShmMode(shm.name), 0o600)
  t.true(existsInDevShm(shm.name))
  shm.close()
})

test('use after close in a child process never crashes it', async (t) => {
  const { code, signal, stderr, messages } = await runChild('use-after-close.cjs')
  t.is(signal, null, stderr)
  t.is(code, 0, stderr)
  t.deepEqual(messages, [
    { lengths: [0, 0, 0], reads: [null, null, null], writes: [null, null, 'TypeError', null, 'TypeError'] },
  ])
})

onlyWhere(onLinux, 'Linux only')('a full /dev/shm is ENOSPC at create, not SIGBUS at first write', (t) => {
  const probe = spawnSync('unshare', ['-m', 'true'])
  if (probe.status !== 0) {
    t.log('unshare -m is not permitted here; skipping the ENOSPC test')
    return t.pass()
  }
  const fixture = new URL('./fixtures/enospc.cjs', import.meta.url).pathname
  const script = `mount -t tmpfs -o size=1m tmpfs /dev/shm && exec "${process.execPath}" "${fixture}"`
  const run = spawnSync('unshare', ['-m', 'sh', '-c', script], { encoding: 'utf8' })
  t.is(run.signal, null, run.stderr)
  t.is(run.status, 0, run.stderr)
  t.deepEqual(JSON.parse(run.stdout), { code: 'ENOSPC', leftBehind: [], sparseCreated: true })
})

onlyWhere(onLinux, 'reads /proc/self/maps')('close unmaps at once, even in a loop that never yields to finalizers', (t) => {
  // Every mapping of a file in /dev/shm. (A segment created on Linux is built unnamed and
  // linked under its name once complete, so its creator's mapping reads
  // `/dev/shm/#<inode> (deleted)` there.)
  const mappedSegments = () => readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes('/dev/shm/')).length
  const before = mappedSegments()
  for (let i = 0; i < 200; i++) {
    const shm = SharedMemory.create(4096)
    if (i === 0) t.is(mappedSegments(), before + 1, 'a live segment is mapped')
    shm.buf[0] = i
    new Float64Array(shm.buffer)[1] = i
    shm.close()
    shm.unlink()
  }
  t.is(mappedSegments(), before)
})

onlyWhere(process.platform === 'linux', 'vm.max_map_count is a Linux limit')('holding too many handles gives ERR_SHM_TOO_MANY_MAPPINGS, and the process keeps working', async (t) => {
  const { code, signal, messages, stderr } = await runChild('mapping-budget.cjs', [], { execArgv: ['--expose-gc'] })
  t.is(signal, null, stderr)
  t.is(code, 0, stderr)
  const report = messages[0] as { opened: number; code: string; message: string; createCode: string; grown: number }
  t.log(`refused after ${report.opened} handles: ${report.message}`)
  t.is(report.code, 'ERR_SHM_TOO_MANY_MAPPINGS')
  t.is(report.createCode, 'ERR_SHM_TOO_MANY_MAPPINGS')
  t.regex(report.message, /close\(\)/)
  const maxMapCount = Number(readFileSync('/proc/sys/vm/max_map_count', 'utf8'))
  t.true(report.opened <= maxMapCount - maxMapCount / 4 + 1, 'a quarter of vm.max_map_count stays free')
  t.is(report.grown, 320)
})

onlyWhere(onLinux, 'a sparse 4 GiB segment needs /dev/shm')('a segment larger than one Buffer: buf is a working view or ERR_SHM_BUFFER_TOO_LARGE, and windows reach its end', async (t) => {
  const { code, signal, messages, stderr } = await runChild('big-segment.cjs', [], { execArgv: ['--expose-gc'] })
  t.is(signal, null, stderr)
  t.is(code, 0, stderr)
  const report = messages[0] as {
    maxLength: number
    size: number
    views: Array<{ getter: string; length?: number; code?: string; message?: string }>
    tail: string
    lastByte: number
    shared: { length?: number; code?: string }
    tailByteLength: number
    tailAfterClose: number
  }
  t.is(report.views.length, 4, 'buf and buffer of the creator and of an attached handle')
  for (const view of report.views) {
    if (report.size <= report.maxLength) t.is(view.length, report.size, view.getter)
    else {
      t.is(view.code, 'ERR_SHM_BUFFER_TOO_LARGE', view.getter)
      t.regex(view.message!, /window\(byteOffset, byteLength\)/)
    }
  }
  t.is(report.tail, 'the last page')
  t.is(report.tailByteLength, 4096)
  if (report.shared.code !== undefined) t.is(report.shared.code, 'ERR_SHM_NO_SHARED_ARRAY_BUFFER')
  else {
    t.is(report.shared.length, report.size, 'sharedBuffer covers the whole segment')
    t.is(report.lastByte, 7)
  }
  t.is(report.tailAfterClose, 0)
})

test('window(byteOffset, byteLength) is a zero-copy view of part of the segment', (t) => {
  const shm = SharedMemory.create(8192)
  t.teardown(() => shm.unlink())
  const page = shm.window(4096, 100)
  t.true(Buffer.isBuffer(page))
  t.is(page.length, 100)
  t.is(page.buffer.byteLength, 100, 'its ArrayBuffer covers the window only')
  page.write('through the window')
  t.is(shm.buf.toString('utf8', 4096, 4096 + 18), 'through the window')
  shm.buf.write('through buf', 4100)
  t.is(page.toString('utf8', 4, 15), 'through buf')
  new Int32Array(shm.window(0, 8).buffer)[1] = 42
  t.is(shm.buf.readInt32LE(4), 42)
  t.is(shm.window(8000).length, 192, 'byteLength defaults to the rest of the segment')
  t.is(shm.window(8192).length, 0)
  shm.close()
})

test('window() checks its range: ERR_OUT_OF_RANGE, nothing made', (t) => {
  const shm = SharedMemory.create(4096)
  t.teardown(() => {
    shm.close()
    shm.unlink()
  })
  for (const [offset, length] of [
    [-1, 1],
    [4097, undefined],
    [1.5, 1],
    [Number.NaN, 1],
    [Infinity, 1],
    [0, 4097],
    [4000, 97],
    [0, -1],
    [0, 0.5],
    [2 ** 53, 1],
  ] as Array<[number, number | undefined]>) {
    t.throws(() => shm.window(offset, length), { code: 'ERR_OUT_OF_RANGE' }, `${offset}, ${length}`)
  }
})

test('close() detaches every window, also one whose ArrayBuffer alone was kept', (t) => {
  const shm = SharedMemory.create(4096)
  t.teardown(() => shm.unlink())
  const windows = Array.from({ length: 40 }, (_, i) => shm.window(i * 8, 8))
  const arrayBuffer = shm.window(100, 10).buffer
  const typed = new Float64Array(shm.window(1024, 64).buffer)
  const whole = shm.buf
  shm.close()
  t.true(windows.every((w) => w.length === 0))
  t.is(arrayBuffer.byteLength, 0)
  t.is(typed.length, 0)
  t.is(whole.length, 0)
  t.throws(() => shm.window(0, 8), { code: 'ERR_SHM_CLOSED' })
})

test('a window outlives a collected handle and keeps the mapping', (t) => {
  const index = JSON.stringify(fileURLToPath(new URL('../index.js', import.meta.url)))
  const result = spawnSync(
    process.execPath,
    [
      '--expose-gc',
      '-e',
      `const { SharedMemory } = require(${index});
       let shm = SharedMemory.create(4096);
       const w = shm.window(10, 5);
       w.write('alive');
       shm.unlink();
       shm = null;
       for (let i = 0; i < 5; i++) global.gc();
       setTimeout(() => { global.gc(); process.exit(w.toString() === 'alive' ? 0 : 2) }, 50);`,
    ],
    { encoding: 'utf8' },
  )
  t.is(result.status, 0, result.stderr)
})
