import { randomFillSync } from 'node:crypto'

import test from 'ava'

import { ShareableList, SharedMemory } from '../index.js'
import { uniqueName } from './helpers.js'

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
