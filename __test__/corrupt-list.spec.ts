import { type ChildProcess, fork } from 'node:child_process'
import { randomFillSync } from 'node:crypto'
import { closeSync, openSync, statSync, writeSync } from 'node:fs'
import { join } from 'node:path'

import test from 'ava'

import { ShareableList, SharedMemory } from '../index.js'
import { FIXTURES, onlyWhere, PY_ATTACH, pythons, runPython, uniqueName } from './helpers.js'

/** A segment holding `bytes`, unlinked when the test ends. */
function segmentWith(t: { teardown: (fn: () => void) => void }, bytes: Buffer, size = bytes.length) {
  const shm = SharedMemory.create(Math.max(size, 1))
  t.teardown(() => {
    shm.close()
    shm.unlink()
  })
  bytes.copy(shm.buf)
  return shm
}

function validListBytes(): Buffer {
  const sl = new ShareableList(['howdy', Buffer.from('HoWdY'), -273.154, 100, null, true, 42])
  const bytes = Buffer.from(sl.shm.buf)
  sl.close()
  sl.shm.unlink()
  return bytes
}

const N = 7
const FORMATS = 8 * (N + 2) + 56
const CODES = FORMATS + 8 * N

const cases: Array<[string, (b: Buffer) => Buffer]> = [
  ['a truncated header', (b) => b.subarray(0, 5)],
  ['a negative count', (b) => (b.writeBigInt64LE(-1n, 0), b)],
  ['a huge count', (b) => (b.writeBigInt64LE(1n << 40n, 0), b)],
  ['offsets past the end', (b) => (b.writeBigInt64LE(100000n, 8 + 8 * N), b)],
  ['decreasing offsets', (b) => (b.writeBigInt64LE(4n, 8 + 8 * 2), b)],
  ['a first offset that is not 0', (b) => (b.writeBigInt64LE(3n, 8), b)],
  ['a format claiming more than its slot', (b) => (b.write('99s\0\0\0\0\0', FORMATS, 'latin1'), b)],
  ['an unknown format', (b) => (b.write('Q\0\0\0\0\0\0\0', FORMATS + 16, 'latin1'), b)],
  ['an unknown code', (b) => ((b[CODES + 2] = 9), b)],
  ['a format and code that disagree', (b) => ((b[CODES + 3] = 1), b)],
]

for (const [what, damage] of cases) {
  test(`a segment with ${what} is refused with ERR_SHM_CORRUPT`, (t) => {
    const shm = segmentWith(t, damage(validListBytes()))
    const err = t.throws(() => ShareableList.open(shm.name), { code: 'ERR_SHM_CORRUPT' })
    t.regex(err!.message, new RegExp(shm.name))
  })
}

/**
 * The size an opener sees of a 1-byte segment: 1 on Linux; a whole page on macOS and Windows,
 * which round a segment up to pages, so that a segment there never ends inside a page.
 */
function attachGranularity(): number {
  const name = uniqueName('gran')
  const one = SharedMemory.create(1, { name })
  const seen = SharedMemory.open(name)
  const size = seen.size
  seen.close()
  one.close()
  one.unlink()
  return size
}

test('a list cut short is refused with ERR_SHM_CORRUPT (macOS, Windows: cut at a page boundary)', (t) => {
  const granularity = attachGranularity()
  // A list longer than one page, cut one byte short, or down to the last page boundary where
  // segments are whole pages (a cut inside a page is padded back with zeros there).
  const sl = new ShareableList(['x'.repeat(granularity), 7, 'end'])
  const bytes = Buffer.from(sl.shm.buf.subarray(0, sl.shm.size))
  sl.close()
  sl.shm.unlink()
  const cut = granularity === 1 ? bytes.length - 1 : Math.floor((bytes.length - 1) / granularity) * granularity
  const shm = segmentWith(t, bytes.subarray(0, cut))
  t.true(cut > 0 && cut < bytes.length)
  const err = t.throws(() => ShareableList.open(shm.name), { code: 'ERR_SHM_CORRUPT' })
  t.regex(err!.message, new RegExp(shm.name))
})

test('random bytes never crash: each open either fails cleanly or reads cleanly', (t) => {
  let refused = 0
  for (let round = 0; round < 300; round++) {
    const bytes = randomFillSync(Buffer.alloc(16 + (round % 200)))
    // Small counts make the header plausible more often.
    if (round % 3 === 0) bytes.writeBigInt64LE(BigInt(round % 5), 0)
    const shm = segmentWith(t, bytes)
    try {
      const sl = ShareableList.open(shm.name)
      for (let i = 0; i < sl.length; i++) {
        try {
          sl.get(i)
        } catch (err) {
          t.is((err as { code: string }).code, 'ERR_SHM_CORRUPT')
        }
      }
      sl.close()
    } catch (err) {
      t.is((err as { code: string }).code, 'ERR_SHM_CORRUPT')
      refused += 1
    }
  }
  t.true(refused > 0)
})

test('a format changed by another process after attach is caught on access', (t) => {
  const sl = new ShareableList(['howdy', 1])
  t.teardown(() => {
    sl.close()
    sl.shm.unlink()
  })
  const raw = SharedMemory.open(sl.shm.name)
  const formats = 8 * 4 + 16
  raw.buf.write('64s\0\0\0\0\0', formats, 'latin1')
  t.throws(() => sl.get(0), { code: 'ERR_SHM_CORRUPT', message: /64 bytes in a 8-byte slot/ })
  t.throws(() => sl.toArray(), { code: 'ERR_SHM_CORRUPT' })
  t.is(sl.get(1), 1)
  // A str slot holding bytes that are not UTF-8.
  raw.buf.write('8s\0\0\0\0\0\0', formats, 'latin1')
  raw.buf[8 * 4] = 0xff
  t.throws(() => sl.get(0), { code: 'ERR_SHM_CORRUPT', message: /not UTF-8/ })
  // Repair it; everything works again.
  sl.set(0, 'fixed')
  t.is(sl.get(0), 'fixed')
  raw.close()
})

test('a plain segment of zeros is an empty list; a tiny one is refused', (t) => {
  const zeros = segmentWith(t, Buffer.alloc(64))
  const sl = ShareableList.open(zeros.name)
  t.is(sl.length, 0)
  sl.close()
  const tiny = segmentWith(t, Buffer.alloc(4))
  if (attachGranularity() === 1) {
    t.throws(() => ShareableList.open(tiny.name), { code: 'ERR_SHM_CORRUPT' })
  } else {
    // macOS and Windows: no segment is smaller than a page; an opener sees a page of zeros.
    const padded = ShareableList.open(tiny.name)
    t.is(padded.length, 0)
    padded.close()
  }
})

/** Forks a fixture; resolves with its first message once it sends one. */
function started(script: string, args: string[]): { child: ChildProcess; first: Promise<unknown>; done: ReturnType<typeof finished> } {
  const child = fork(join(FIXTURES, script), args, { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], execArgv: [] })
  const first = new Promise((resolve) => child.once('message', resolve))
  return { child, first, done: finished(child) }
}

function finished(child: ChildProcess): Promise<{ code: number | null; signal: string | null; last: unknown; stderr: string }> {
  let last: unknown
  let stderr = ''
  child.on('message', (m) => (last = m))
  child.stderr?.on('data', (d) => (stderr += d))
  return new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, last, stderr })))
}

test('a peer rewriting formats and codes while every operation runs: clean ERR_SHM_CORRUPT, never a crash or a panic', async (t) => {
  const sl = new ShareableList(['abcdefg', 1])
  t.teardown(() => {
    sl.close()
    sl.shm.unlink()
  })
  const formatsAt = 8 * 4 + 16
  const codesAt = formatsAt + 16
  const hammers = [0, 1].map(() => started('list-hammer.cjs', [sl.shm.name, '1500']))
  await Promise.all(hammers.map((h) => h.first))
  const flipper = started('list-format-flipper.cjs', [sl.shm.name, String(formatsAt), String(codesAt), '2500'])
  await flipper.first
  for (const h of hammers) h.child.send('go')
  const results = await Promise.all([...hammers.map((h) => h.done), flipper.done])
  for (const { code, signal, stderr } of results) t.deepEqual([code, signal], [0, null], stderr)
  for (const { last } of results.slice(0, 2)) {
    const { calls, codes } = last as { calls: number; codes: Record<string, number> }
    t.log(`${calls} calls, failures by code: ${JSON.stringify(codes)}`)
    t.deepEqual(
      Object.keys(codes).filter((c) => c !== 'ERR_SHM_CORRUPT' && c !== 'ERR_SHM_VALUE_NOT_FOUND'),
      [],
    )
    t.true(codes.ERR_SHM_CORRUPT > 0, 'the peer’s rewrites were seen')
  }
  t.true(['fresh', 42].includes(sl.get(1) as never), 'the list is usable afterwards: item 1 holds what a hammer set last')
})

/** A sparse segment of `size` bytes whose first 8 bytes (the list's count) are `count`. */
function sparseWithCount(t: { teardown: (fn: () => void) => void }, size: number, count: bigint): string {
  const shm = SharedMemory.create(size, { reserve: false })
  t.teardown(() => shm.unlink())
  const header = Buffer.alloc(8)
  header.writeBigInt64LE(count)
  const fd = openSync(join('/dev/shm', shm.name), 'r+')
  writeSync(fd, header, 0, 8, 0)
  closeSync(fd)
  shm.close()
  return shm.name
}

/**
 * 256 GiB, or the largest sparse segment this address space maps: qemu-user maps less, and so
 * do arm64 kernels with 39-bit addresses.
 */
function hugeSparseSize(): number {
  for (let bits = 38; bits > 32; bits--) {
    try {
      const probe = SharedMemory.create(2 ** bits, { reserve: false, track: false })
      probe.close()
      probe.unlink()
      return 2 ** bits
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENOMEM') throw err
    }
  }
  return 2 ** 32
}

let baseline: Promise<number> | undefined
/**
 * Peak memory above that of a process that only loads the addon, in MiB. An emulator adds its
 * own (qemu-user: some 250 MiB more than natively); the lies checked here would add 800 MB
 * or more.
 */
async function peakAboveBaseline(peakMiB: number): Promise<number> {
  baseline ??= finished(fork(join(FIXTURES, 'list-alloc.cjs'), ['baseline'], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], execArgv: [] })).then(
    ({ last }) => (last as { maxRssMiB: number }).maxRssMiB,
  )
  return peakMiB - (await baseline)
}

onlyWhere(process.platform === 'linux', 'writes the header through /dev/shm')('a count that lies about a huge sparse segment allocates nothing before ERR_SHM_CORRUPT', async (t) => {
  // 256 GiB, sparse: 2^33 items (a 32nd of the size) would be 64 GiB of offsets, 10^8 items
  // 800 MB.
  const size = hugeSparseSize()
  for (const count of [BigInt(size / 32), 100_000_000n]) {
    const name = sparseWithCount(t, size, count)
    const { code, signal, last, stderr } = await finished(fork(join(FIXTURES, 'list-alloc.cjs'), ['open', name], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], execArgv: [] }))
    t.deepEqual([code, signal], [0, null], stderr)
    const result = last as { code: string; maxRssMiB: number; message: string }
    t.is(result.code, 'ERR_SHM_CORRUPT', result.message)
    t.true((await peakAboveBaseline(result.maxRssMiB)) < 240, `peak RSS ${result.maxRssMiB} MiB`)
  }
})

test('new ShareableList(new Array(1e9)) fails on the first hole without reserving memory for the rest', async (t) => {
  const { code, signal, last, stderr } = await finished(fork(join(FIXTURES, 'list-alloc.cjs'), ['holes'], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], execArgv: [] }))
  t.deepEqual([code, signal], [0, null], stderr)
  const result = last as { code: string; maxRssMiB: number }
  t.is(result.code, 'ERR_SHM_UNSUPPORTED_TYPE')
  t.true((await peakAboveBaseline(result.maxRssMiB)) < 240, `peak RSS ${result.maxRssMiB} MiB`)
})

test('count, index and set with a Buffer over a huge sparse segment never copy it', async (t) => {
  const shm = SharedMemory.create(2 ** 30, { reserve: false })
  t.teardown(() => shm.unlink())
  const { code, signal, last, stderr } = await finished(fork(join(FIXTURES, 'list-alloc.cjs'), ['huge-view', shm.name], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], execArgv: [] }))
  t.deepEqual([code, signal], [0, null], stderr)
  const result = last as { count: number; indexCode: string; code: string; after: unknown[]; maxRssMiB: number }
  t.is(result.count, 0)
  t.is(result.indexCode, 'ERR_SHM_VALUE_NOT_FOUND')
  t.is(result.code, 'ERR_SHM_VALUE_TOO_LARGE')
  t.deepEqual(result.after, ['x', 1])
  t.true((await peakAboveBaseline(result.maxRssMiB)) < 240, `peak RSS ${result.maxRssMiB} MiB`)
  if (process.platform === 'linux') t.true(statSync(join('/dev/shm', shm.name)).blocks < 1024, 'the sparse segment was not read')
  shm.close()
})

test('a foreign slot of 10 MB takes text up to the longest a format can say, and CPython reads it', (t) => {
  // One item, int 5, in a 10,000,000-byte slot: more than a format's 8 bytes can express
  // ("10000000s" is 9), so no CPython makes it, but any program may.
  const slot = 10_000_000
  const bytes = Buffer.alloc(8 * 3 + slot + 9)
  bytes.writeBigInt64LE(1n, 0)
  bytes.writeBigInt64LE(BigInt(slot), 16)
  bytes.writeBigInt64LE(5n, 24)
  bytes.write('q', 24 + slot, 'latin1')
  const shm = segmentWith(t, bytes)
  const sl = ShareableList.open(shm.name)
  t.is(sl.get(0), 5)
  sl.set(0, 'x')
  t.is(sl.get(0), 'x')
  t.is(sl.format, '9999992s')
  t.throws(() => sl.set(0, Buffer.alloc(9_999_993, 1)), { code: 'ERR_SHM_VALUE_TOO_LARGE' })
  t.is(sl.get(0), 'x')
  const py = pythons()[0]
  if (py) {
    const out = runPython(py, `${PY_ATTACH}
from multiprocessing import shared_memory
sl = shared_memory.ShareableList(name=sys.argv[1])
untrack(sl.shm)
print(sl[0], sl.format)
sl.shm.close()
`, [shm.name])
    t.is(out.trim(), 'x 9999992s')
  }
  sl.set(0, 2.5)
  t.is(sl.get(0), 2.5)
  sl.close()
})
