// `npm run bench`: shmkit against its peers, same machine, same run. Figures only; nothing
// here is asserted. `--quick` runs every case briefly, to check that the benchmark works.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { Bench } from 'tinybench'

import { attachRss, bandwidth, shmTypedArray, shmTypedArrayOps, transfer } from './bulk-and-peers.mjs'
import { renderChart } from './chart.mjs'
import { printQueue, queueBench } from './queue.mjs'
import { cFutexWake, ipcWake, shmkitWake } from './sync.mjs'

const require = createRequire(import.meta.url)
const { SharedMemory, ShareableList, ShmLock } = require('../index.js')

const quick = process.argv.includes('--quick')
const ROUNDS = quick ? 3 : 15
const ITERS = quick ? 200 : 2000
const SIZE = 4096
const LIST_ITERS = quick ? 2000 : 20000
const BIG_ITERS = quick ? 5 : 40
const here = fileURLToPath(new URL('.', import.meta.url))

/**
 * One call of `op` measured by tinybench: the median (p50) latency in nanoseconds. (The C and
 * CPython peers are separate programs and time their own loops; see benchmark/peers.)
 */
async function measure(op, minIterations = quick ? 50 : 500, batch = 1) {
  const bench = new Bench({ time: quick ? 50 : 400, iterations: minIterations, warmupTime: quick ? 10 : 100, throws: true })
  // Sub-microsecond operations run in batches, so the timer's own cost does not swamp them.
  bench.add('op', batch === 1 ? op : () => {
    for (let i = 0; i < batch; i++) op()
  })
  await bench.run()
  return (bench.tasks[0].result.latency.p50 * 1e6) / batch
}


function cFloor(size = SIZE, iters = ITERS) {
  const dir = mkdtempSync(join(tmpdir(), 'shmkit-bench-'))
  try {
    const exe = join(dir, 'shm_loop')
    execFileSync('cc', ['-O2', '-o', exe, join(here, 'peers/shm_loop.c'), '-lrt'])
    return JSON.parse(execFileSync(exe, [ROUNDS, iters, size].map(String), { encoding: 'utf8' }))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

function cpython(size = SIZE, iters = ITERS) {
  try {
    const out = execFileSync('python3', [join(here, 'peers/cpython_shm.py'), ROUNDS, iters, size].map(String), {
      encoding: 'utf8',
    })
    return JSON.parse(out)
  } catch (err) {
    console.warn(`CPython peer skipped: ${err.message.split('\n')[0]}`)
    return null
  }
}

function cpythonList() {
  try {
    const out = execFileSync('python3', [join(here, 'peers/cpython_list.py'), ROUNDS, LIST_ITERS].map(String), { encoding: 'utf8' })
    return JSON.parse(out)
  } catch (err) {
    console.warn(`CPython ShareableList peer skipped: ${err.message.split('\n')[0]}`)
    return null
  }
}

/** The same 600-item mixed list as the CPython peer builds. */
function mixed(n) {
  const kinds = [(i) => i, (i) => i + 0.5, (i) => i % 2 === 0, () => null, (i) => `item${i}`, (i) => Buffer.from(`raw${i}`)]
  return Array.from({ length: n }, (_, i) => kinds[i % kinds.length](i))
}

async function shmkitList() {
  const sl = new ShareableList([12345, 'short'], { track: false })
  const big = new ShareableList(mixed(600), { track: false })
  let sink = 0
  try {
    return {
      getInt: await measure(() => (sink += sl.get(0)), quick ? 20 : 200, 100),
      getStr: await measure(() => (sink += sl.get(1).length), quick ? 20 : 200, 100),
      setInt: await measure(() => sl.set(0, 54321), quick ? 20 : 200, 100),
      setStr: await measure(() => sl.set(1, 'other'), quick ? 20 : 200, 100),
      toArray600: await measure(() => (sink += big.toArray().length), quick ? 20 : 200),
      forOf600: await measure(() => {
        for (const item of big) sink += item === null ? 1 : 0
      }, quick ? 20 : 200),
      count600: await measure(() => (sink += big.count(599)), quick ? 20 : 200),
      index600: await measure(() => (sink += big.index('item598')), quick ? 20 : 200),
    }
  } finally {
    for (const list of [sl, big]) {
      list.close()
      list.shm.unlink()
    }
    if (sink === -1) console.log(sink)
  }
}

/** create+close+unlink of a 64 MiB segment, reserved and sparse. */
async function shmkitBig() {
  const big = 64 * 2 ** 20
  return {
    create: await measure(() => {
      const s = SharedMemory.create(big, { track: false })
      s.close()
      s.unlink()
    }, BIG_ITERS),
    createSparse: await measure(() => {
      const s = SharedMemory.create(big, { track: false, reserve: false })
      s.close()
      s.unlink()
    }, BIG_ITERS),
  }
}

async function shmkit() {
  const seed = SharedMemory.create(SIZE, { track: false })
  const result = {
    create: await measure(() => {
      const s = SharedMemory.create(SIZE, { track: false })
      s.close()
      s.unlink()
    }),
    createTracked: await measure(() => {
      const s = SharedMemory.create(SIZE)
      s.close()
      s.unlink()
    }),
    createSparse: await measure(() => {
      const s = SharedMemory.create(SIZE, { track: false, reserve: false })
      s.close()
      s.unlink()
    }),
    createWithBuf: await measure(() => {
      const s = SharedMemory.create(SIZE, { track: false })
      s.buf[0] = 1
      s.close()
      s.unlink()
    }),
    open: await measure(() => SharedMemory.open(seed.name).close()),
    openWithBuf: await measure(() => {
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
// shm-typed-array builds with node-gyp on first use (skipped in quick mode unless present).
const sta = quick && !existsSync(join(here, '.peers', 'node_modules', 'shm-typed-array', 'build')) ? null : shmTypedArray()
const passes = { c: [], node: [], py: [], nodeList: [], pyList: [], cBig: [], nodeBig: [], pyBig: [], sta: [] }
for (let p = 0; p < PASSES; p++) {
  passes.c.push(cFloor())
  passes.node.push(await shmkit())
  const py = cpython()
  if (py) passes.py.push(py)
  if (sta) passes.sta.push(shmTypedArrayOps(ROUNDS, Math.min(ITERS, 500)))
  passes.cBig.push(cFloor(64 * 2 ** 20, BIG_ITERS))
  passes.nodeBig.push(await shmkitBig())
  const pyBig = cpython(64 * 2 ** 20, BIG_ITERS)
  if (pyBig) passes.pyBig.push(pyBig)
  passes.nodeList.push(await shmkitList())
  const pyList = cpythonList()
  if (pyList) passes.pyList.push(pyList)
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
const nodeList = medianOf(passes.nodeList)
const pyList = medianOf(passes.pyList)
const cBig = medianOf(passes.cBig)
const nodeBig = medianOf(passes.nodeBig)
const pyBig = medianOf(passes.pyBig)
const staOps = medianOf(passes.sta)
const lockShm = SharedMemory.create(4096, { track: false })
const lock = ShmLock.create(lockShm, 0)
const lockUnlockNs = await measure(() => {
  lock.lock()
  lock.unlock()
}, quick ? 50 : 500, 100)
lock.close()
lockShm.close()
lockShm.unlink()
const WAKE_ROUNDS = quick ? 2000 : 20000
const wake = { shmkit: await shmkitWake(WAKE_ROUNDS), cFutex: cFutexWake(WAKE_ROUNDS), ipc: await ipcWake(WAKE_ROUNDS) }
const moved = await transfer(quick ? 1 : 5)
const bw = bandwidth(quick ? 1 : 3)
const attach = attachRss()
const queue = await queueBench({ quick, cFutex: wake.cFutex })

const fmt = (ns) => (ns >= 1000 ? `${(ns / 1000).toFixed(2)} µs` : `${ns.toFixed(0)} ns`)
const ratio = (x, floor) => `${(x / floor).toFixed(2)}×`
const rows = [
  ['create+close+unlink 4 KiB (reserved)', node.create, c.create, py?.create, staOps?.create],
  ['create+close+unlink 4 KiB (reserve: false)', node.createSparse, c.createSparse, py?.create, staOps?.create],
  ['  … with buf touched', node.createWithBuf, c.create, py?.create],
  ['open+close 4 KiB', node.open, c.open, py?.open, staOps?.open],
  ['  … with buf touched', node.openWithBuf, c.open, py?.open],
  ['create+close+unlink 64 MiB (reserved)', nodeBig.create, cBig.create, pyBig?.create],
  ['create+close+unlink 64 MiB (reserve: false)', nodeBig.createSparse, cBig.createSparse, pyBig?.create],
]

console.log(`\nshmkit benchmark — ${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, Node ${process.version}, CPython ${py?.version ?? 'absent'}`)
console.log(
  `shmkit: tinybench p50 per operation; C and CPython: median of ${ROUNDS} rounds × ${ITERS} operations in their own loops; ${PASSES} interleaved pass(es)${quick ? ' (quick mode)' : ''}\n`,
)
console.table(
  rows.map(([what, ours, floor, python, peer]) => ({
    case: what,
    shmkit: fmt(ours),
    'C loop': fmt(floor),
    CPython: python ? fmt(python) : '—',
    'shmkit / C': ratio(ours, floor),
    'CPython / C': python ? ratio(python, floor) : '—',
    'CPython / shmkit': python ? ratio(python, ours) : '—',
    'shm-typed-array': peer ? fmt(peer) : '—',
  })),
)
const listRows = [
  ['get (int)', 'getInt'],
  ['get (short str)', 'getStr'],
  ['set (int)', 'setInt'],
  ['set (short str)', 'setStr'],
  ['toArray() of 600 mixed items', 'toArray600'],
  ['for…of over 600 mixed items', 'forOf600'],
  ['count() over 600 mixed items', 'count600'],
  ['index() of item 598 of 600', 'index600'],
]
console.log('\nShareableList, per operation')
console.table(
  listRows.map(([what, key]) => ({
    case: what,
    shmkit: fmt(nodeList[key]),
    CPython: pyList ? fmt(pyList[key]) : '—',
    'CPython / shmkit': pyList ? ratio(pyList[key], nodeList[key]) : '—',
  })),
)

const targets = [
  ['create ≤ 1.3× the C loop', node.create / c.create, (r) => r <= 1.3],
  ['open ≤ 1.3× the C loop', node.open / c.open, (r) => r <= 1.3],
]
if (pyList) {
  for (const [key, times] of [['getInt', 40], ['getStr', 40], ['setInt', 30], ['setStr', 30]]) {
    targets.push([`ShareableList ${key} ≥ ${times}× faster than CPython`, pyList[key] / nodeList[key], (r) => r >= times])
  }
  targets.push(['toArray() ≥ 100× faster than CPython list()', pyList.toArray600 / nodeList.toArray600, (r) => r >= 100])
  for (const key of ['forOf600', 'count600', 'index600']) {
    targets.push([`${key} no slower than toArray() (ratio)`, nodeList[key] / nodeList.toArray600, (r) => r <= 1])
  }
}
targets.push(['cross-process wake-up p50 ≤ 1.5× the C futex ping-pong', wake.shmkit.p50Ns / wake.cFutex.p50Ns, (r) => r <= 1.5])
targets.push(['uncontended ShmLock lock+unlock from JS ≤ 150 ns (ns)', lockUnlockNs, (r) => r <= 150])
targets.push(['64 MiB to a child ≥ 100× faster than advanced-serialization IPC', moved.ipcMs / moved.shmkitMs, (r) => r >= 100])
targets.push(['RSS growth of an untouched 1 GiB attach < 1 MiB (MiB)', attach.growthMiB, (r) => r < 1])
targets.push(['write bandwidth ≥ 80% of C memset (fraction)', bw.shmkitGBs / bw.cMemsetGBs, (r) => r >= 0.8])
const fmtMs = (ms) => (ms == null ? '—' : `${ms.toFixed(1)} ms`)
console.log('\n64 MiB of Float64 to a child process and its checksum back (median)')
console.table([
  { way: 'shmkit (the child attaches by name)', time: fmtMs(moved.shmkitMs), 'vs shmkit': '1.00×' },
  { way: "child_process IPC, serialization: 'advanced'", time: fmtMs(moved.ipcMs), 'vs shmkit': ratio(moved.ipcMs, moved.shmkitMs) },
  { way: 'CPython child (attach by name, sum)', time: fmtMs(moved.cpythonMs), 'vs shmkit': moved.cpythonMs ? ratio(moved.cpythonMs, moved.shmkitMs) : '—' },
  { way: 'in-process: worker thread + SharedArrayBuffer', time: fmtMs(moved.workerSabMs), 'vs shmkit': ratio(moved.workerSabMs, moved.shmkitMs) },
  { way: 'hand-over only: shmkit (child reads one value)', time: fmtMs(moved.shmkitHandoverMs), 'vs shmkit': '1.00×' },
  { way: 'hand-over only: IPC (child reads one value)', time: fmtMs(moved.ipcHandoverMs), 'vs shmkit': ratio(moved.ipcHandoverMs, moved.shmkitHandoverMs) },
])
console.log('\nOne-way wake-up latency between two processes (ping-pong; the mover stamps CLOCK_MONOTONIC, the woken side subtracts)')
console.table([
  { way: 'shmkit shm.wait / shm.notify', p50: fmt(wake.shmkit.p50Ns), p99: fmt(wake.shmkit.p99Ns), 'p50 vs C': ratio(wake.shmkit.p50Ns, wake.cFutex.p50Ns) },
  { way: 'C: shared futex (FUTEX_WAIT/WAKE)', p50: fmt(wake.cFutex.p50Ns), p99: fmt(wake.cFutex.p99Ns), 'p50 vs C': '1.00×' },
  { way: 'child_process IPC message', p50: fmt(wake.ipc.p50Ns), p99: fmt(wake.ipc.p99Ns), 'p50 vs C': ratio(wake.ipc.p50Ns, wake.cFutex.p50Ns) },
])
console.log(`uncontended ShmLock lock()+unlock() from JS: ${fmt(lockUnlockNs)} per pair`)
console.log(
  `first-touch write of 256 MiB: shmkit buf.fill ${bw.shmkitGBs.toFixed(2)} GB/s, C memset ${bw.cMemsetGBs.toFixed(2)} GB/s ` +
    `(${((bw.shmkitGBs / bw.cMemsetGBs) * 100).toFixed(0)}%)`,
)
console.log(`attaching 1 GiB untouched: RSS +${attach.growthMiB.toFixed(2)} MiB, open in ${attach.openUs.toFixed(0)} µs`)
console.log(
  `\ntracked create+close+unlink: ${fmt(node.createTracked)} vs track: false ${fmt(node.create)} ` +
    `(${ratio(node.createTracked, node.create)}; tracking adds ${fmt(node.createTracked - node.create)} per create)\n`,
)
targets.push(...printQueue(queue, fmt))
for (const [what, r, met] of targets) console.log(`${met(r) ? 'met    ' : 'MISSED '} ${what}: ${r.toFixed(2)}${what.includes('(') ? '' : '×'}`)

const results = {
  date: new Date().toISOString(),
  quick,
  node: process.version,
  cpython: py?.version ?? null,
  c,
  shmkit: node,
  python: py,
  shmkitList: nodeList,
  pythonList: pyList,
  big: { c: cBig, shmkit: nodeBig, python: pyBig },
  shmTypedArray: staOps,
  transfer: moved,
  bandwidth: bw,
  attach1GiB: attach,
  sync: { lockUnlockNs, wake },
  queue,
  targets: targets.map(([what, value, met]) => ({ what, value, met: met(value) })),
}
writeFileSync(join(here, quick ? 'results.quick.json' : 'results.json'), `${JSON.stringify(results, null, 2)}\n`)
const chart = join(here, quick ? 'results.quick.svg' : 'results.svg')
writeFileSync(chart, await renderChart(results))
console.log(`\nwrote ${join('benchmark', quick ? 'results.quick.json' : 'results.json')} and ${join('benchmark', chart.split('/').pop())}`)
