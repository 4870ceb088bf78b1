// Bulk memory and the npm peer: transfer of 64 MiB to a child, first-touch write bandwidth,
// attaching 1 GiB untouched, and the npm peer shm-typed-array. Figures only.
import { execFileSync, fork, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { Worker } from 'node:worker_threads'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = fileURLToPath(new URL('.', import.meta.url))
const require = createRequire(import.meta.url)
const { SharedMemory } = require('../index.js')
const MiB = 2 ** 20

const now = () => Number(process.hrtime.bigint()) / 1e6 // ms
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

/** A forked child that answers each message with a checksum. */
async function sumChild(mode) {
  const child = fork(join(here, 'peers/sum-child.cjs'), [mode], { serialization: 'advanced', execArgv: [] })
  await new Promise((resolve) => child.once('message', resolve))
  const ask = (msg) =>
    new Promise((resolve) => {
      child.once('message', resolve)
      child.send(msg)
    })
  return { ask, close: () => child.kill() }
}

/** A worker thread that sums a SharedArrayBuffer: the in-process alternative. */
function sumWorker() {
  const worker = new Worker(join(here, 'peers/sum-worker.cjs'))
  const ask = (msg) =>
    new Promise((resolve) => {
      worker.once('message', resolve)
      worker.postMessage(msg)
    })
  return { ask, close: () => worker.terminate() }
}

/**
 * 64 MiB of Float64 to a child and its checksum back: by name (shmkit), by IPC, by CPython;
 * and, in-process, to a worker thread through a SharedArrayBuffer.
 */
export async function transfer(rounds) {
  const bytes = 64 * MiB
  const shm = SharedMemory.create(bytes, { track: false })
  const floats = new Float64Array(shm.buffer)
  for (let i = 0; i < floats.length; i++) floats[i] = i % 1000
  const expected = floats.reduce((a, b) => a + b, 0)
  const result = {}
  try {
    const viaShm = await sumChild('shmkit')
    const viaIpc = await sumChild('ipc')
    const times = { shmkit: [], ipc: [], cpython: [], shmkitHandover: [], ipcHandover: [], worker: [] }
    const sab = new SharedArrayBuffer(bytes)
    new Float64Array(sab).set(floats)
    const viaWorker = sumWorker()
    const last = floats[floats.length - 1]
    for (let r = 0; r < rounds; r++) {
      let t = now()
      if ((await viaShm.ask(shm.name)) !== expected) throw new Error('shmkit checksum mismatch')
      times.shmkit.push(now() - t)
      t = now()
      if ((await viaIpc.ask(floats)) !== expected) throw new Error('IPC checksum mismatch')
      times.ipc.push(now() - t)
      t = now()
      if ((await viaShm.ask({ only: shm.name })) !== last) throw new Error('shmkit hand-over mismatch')
      times.shmkitHandover.push(now() - t)
      t = now()
      if ((await viaIpc.ask({ only: floats })) !== last) throw new Error('IPC hand-over mismatch')
      times.ipcHandover.push(now() - t)
      t = now()
      if ((await viaWorker.ask({ sab })) !== expected) throw new Error('worker checksum mismatch')
      times.worker.push(now() - t)
      t = now()
      const py = spawnSync('python3', [join(here, 'peers/cpython_sum.py'), shm.name], { encoding: 'utf8' })
      if (py.status === 0 && Number(py.stdout) === expected) times.cpython.push(now() - t)
    }
    viaShm.close()
    viaIpc.close()
    await viaWorker.close()
    result.workerSabMs = median(times.worker)
    result.shmkitMs = median(times.shmkit)
    result.ipcMs = median(times.ipc)
    result.cpythonMs = times.cpython.length ? median(times.cpython) : null
    result.shmkitHandoverMs = median(times.shmkitHandover)
    result.ipcHandoverMs = median(times.ipcHandover)
  } finally {
    shm.close()
    shm.unlink()
  }
  return result
}

/** First-touch write bandwidth into a fresh 256 MiB segment: shmkit's buf.fill vs C memset. */
export function bandwidth(rounds) {
  const size = 256 * MiB
  const dir = mkdtempSync(join(tmpdir(), 'shmkit-bench-'))
  const exe = join(dir, 'memset')
  execFileSync('cc', ['-O2', '-o', exe, join(here, 'peers/memset.c'), '-lrt'])
  const ours = []
  const floor = []
  try {
    for (let r = 0; r < rounds; r++) {
      // reserve: false, so the pages are first touched by the write being measured.
      let shm = SharedMemory.create(size, { track: false, reserve: false })
      const t = now()
      shm.buf.fill(7)
      ours.push(size / ((now() - t) / 1000) / 1e9)
      shm.close()
      shm.unlink()
      shm = SharedMemory.create(size, { track: false, reserve: false })
      floor.push(Number(execFileSync(exe, [shm.name, String(size)], { encoding: 'utf8' })))
      shm.close()
      shm.unlink()
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  return { shmkitGBs: median(ours), cMemsetGBs: median(floor) }
}

/** RSS growth of attaching (and closing) a 1 GiB segment without touching it. */
export function attachRss() {
  const big = SharedMemory.create(1024 * MiB, { track: false, reserve: false })
  try {
    const script = `const { SharedMemory } = require(${JSON.stringify(join(here, '../index.js'))});
const rss = () => process.memoryUsage().rss
const before = rss()
const shm = SharedMemory.open(${JSON.stringify(big.name)})
const buf = shm.buf
const during = rss()
const t0 = process.hrtime.bigint(); const again = SharedMemory.open(${JSON.stringify(big.name)}); const openUs = Number(process.hrtime.bigint() - t0) / 1000; again.close()
shm.close()
console.log(JSON.stringify({ growthMiB: (during - before) / 2 ** 20, length: buf.length === 0 ? 'detached' : buf.length, openUs }))`
    return JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' }))
  } finally {
    big.close()
    big.unlink()
  }
}

/**
 * shm-typed-array, the best-known Node peer, installed into benchmark/.peers by the benchmark
 * itself (it builds with node-gyp). Returns its folder, or null with the reason printed.
 */
export function shmTypedArray() {
  const prefix = join(here, '.peers')
  const entry = join(prefix, 'node_modules', 'shm-typed-array')
  if (!existsSync(join(entry, 'build', 'Release'))) {
    mkdirSync(prefix, { recursive: true })
    const install = spawnSync('npm', ['install', '--prefix', prefix, '--no-save', '--foreground-scripts', 'shm-typed-array@0.1.1'], {
      encoding: 'utf8',
    })
    if (install.status !== 0 || !existsSync(join(entry, 'build', 'Release'))) {
      // npm may skip its install script; run its build explicitly.
      const build = spawnSync('npx', ['node-gyp', 'rebuild'], { cwd: entry, encoding: 'utf8' })
      if (build.status !== 0) {
        console.warn(`shm-typed-array could not be built: ${(build.stderr || install.stderr).split('\n').slice(-3).join(' ')}`)
        return null
      }
    }
  }
  try {
    require(entry)
    return entry
  } catch (err) {
    console.warn(`shm-typed-array did not load: ${err.message}`)
    return null
  }
}

/** shm-typed-array's create+destroy and attach+detach of 4 KiB, measured in a child process. */
export function shmTypedArrayOps(rounds, iters) {
  const moduleDir = join(here, '.peers', 'node_modules', 'shm-typed-array')
  const out = execFileSync(process.execPath, ['--expose-gc', join(here, 'peers/sta-ops.cjs'), moduleDir, String(rounds), String(iters)], {
    encoding: 'utf8',
  })
  return JSON.parse(out)
}

