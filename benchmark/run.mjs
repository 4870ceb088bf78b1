// `npm run bench`: shmkit against its peers, same machine, same run. Figures only; nothing
// here is asserted. `--quick` runs every case briefly, to check that the benchmark works.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const { SharedMemory } = require('../index.js')

const quick = process.argv.includes('--quick')
const ROUNDS = quick ? 3 : 15
const ITERS = quick ? 200 : 2000
const SIZE = 4096
const here = fileURLToPath(new URL('.', import.meta.url))

function medianRound(op) {
  const perOp = []
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < ITERS; i++) op()
    perOp.push(Number(process.hrtime.bigint() - t0) / ITERS)
  }
  perOp.sort((a, b) => a - b)
  return perOp[Math.floor(perOp.length / 2)]
}

function cFloor() {
  const dir = mkdtempSync(join(tmpdir(), 'shmkit-bench-'))
  try {
    const exe = join(dir, 'shm_loop')
    execFileSync('cc', ['-O2', '-o', exe, join(here, 'peers/shm_loop.c'), '-lrt'])
    return JSON.parse(execFileSync(exe, [ROUNDS, ITERS, SIZE].map(String), { encoding: 'utf8' }))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

function cpython() {
  try {
    const out = execFileSync('python3', [join(here, 'peers/cpython_shm.py'), ROUNDS, ITERS, SIZE].map(String), {
      encoding: 'utf8',
    })
    return JSON.parse(out)
  } catch (err) {
    console.warn(`CPython peer skipped: ${err.message.split('\n')[0]}`)
    return null
  }
}

function shmkit() {
  const seed = SharedMemory.create(SIZE, { track: false })
  const result = {
    create: medianRound(() => {
      const s = SharedMemory.create(SIZE, { track: false })
      s.close()
      s.unlink()
    }),
    createSparse: medianRound(() => {
      const s = SharedMemory.create(SIZE, { track: false, reserve: false })
      s.close()
      s.unlink()
    }),
    createWithBuf: medianRound(() => {
      const s = SharedMemory.create(SIZE, { track: false })
      s.buf[0] = 1
      s.close()
      s.unlink()
    }),
    open: medianRound(() => SharedMemory.open(seed.name).close()),
    openWithBuf: medianRound(() => {
      const s = SharedMemory.open(seed.name)
      s.buf[0] = 1
      s.close()
    }),
  }
  seed.close()
  seed.unlink()
  return result
}

// Machines drift; interleave the runners over several passes and keep each case's median.
const PASSES = quick ? 1 : 3
const passes = { c: [], node: [], py: [] }
for (let p = 0; p < PASSES; p++) {
  passes.c.push(cFloor())
  passes.node.push(shmkit())
  const py = cpython()
  if (py) passes.py.push(py)
}
const medianOf = (list) => {
  if (list.length === 0) return null
  const out = { ...list[0] }
  for (const key of Object.keys(out)) {
    if (typeof out[key] !== 'number') continue
    const values = list.map((x) => x[key]).sort((a, b) => a - b)
    out[key] = values[Math.floor(values.length / 2)]
  }
  return out
}
const c = medianOf(passes.c)
const node = medianOf(passes.node)
const py = medianOf(passes.py)

const fmt = (ns) => (ns >= 1000 ? `${(ns / 1000).toFixed(2)} µs` : `${ns.toFixed(0)} ns`)
const ratio = (x, floor) => `${(x / floor).toFixed(2)}×`
const rows = [
  ['create+close+unlink 4 KiB (reserved)', node.create, c.create, py?.create],
  ['create+close+unlink 4 KiB (reserve: false)', node.createSparse, c.createSparse, py?.create],
  ['  … with buf touched', node.createWithBuf, c.create, py?.create],
  ['open+close 4 KiB', node.open, c.open, py?.open],
  ['  … with buf touched', node.openWithBuf, c.open, py?.open],
]

console.log(`\nshmkit benchmark — ${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, Node ${process.version}, CPython ${py?.version ?? 'absent'}`)
console.log(`median of ${ROUNDS} rounds × ${ITERS} operations, ${PASSES} interleaved pass(es)${quick ? ' (quick mode)' : ''}\n`)
console.table(
  rows.map(([what, ours, floor, python]) => ({
    case: what,
    shmkit: fmt(ours),
    'C loop': fmt(floor),
    CPython: python ? fmt(python) : '—',
    'shmkit / C': ratio(ours, floor),
    'CPython / C': python ? ratio(python, floor) : '—',
    'CPython / shmkit': python ? ratio(python, ours) : '—',
  })),
)
const targets = [
  ['create ≤ 1.3× the C loop', node.create / c.create],
  ['open ≤ 1.3× the C loop', node.open / c.open],
]
for (const [what, r] of targets) console.log(`${r <= 1.3 ? 'met    ' : 'MISSED '} ${what}: ${r.toFixed(2)}×`)

const results = { date: new Date().toISOString(), quick, node: process.version, cpython: py?.version ?? null, c, shmkit: node, python: py }
writeFileSync(join(here, quick ? 'results.quick.json' : 'results.json'), `${JSON.stringify(results, null, 2)}\n`)
