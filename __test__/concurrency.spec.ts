import { type ChildProcess, fork, spawn } from 'node:child_process'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'

import test from 'ava'

import { ShareableList, SharedMemory } from '../index.js'
import { FIXTURES, PY_ATTACH, type Python, iterations, needs, pythons, runChild, runPython, uniqueName } from './helpers.js'

// Under emulation every process starts a Node under qemu (seconds of CPU each): 4 there.
const PROCESSES = iterations(8, 4)
const WORKERS = 4
// Scaled down under emulation (SHMKIT_ITERATION_SCALE): 12 adders still interleave.
const PER_ADDER = iterations(250_000, 10_000)

test(`${PROCESSES} processes and ${WORKERS} worker threads × ${PER_ADDER} Atomics.add: exact totals`, async (t) => {
  const shm = SharedMemory.create(64)
  t.teardown(() => shm.unlink())
  const adders: Array<Promise<unknown>> = []
  for (let i = 0; i < PROCESSES; i++) {
    const child = fork(join(FIXTURES, 'atomic-adder.cjs'), [shm.name, String(PER_ADDER)], { execArgv: [] })
    adders.push(new Promise((resolve, reject) => child.on('exit', (code) => (code === 0 ? resolve(code) : reject(new Error(`exit ${code}`))))))
  }
  for (let i = 0; i < WORKERS; i++) {
    const worker = new Worker(join(FIXTURES, 'atomic-adder.cjs'), { workerData: { name: shm.name, count: PER_ADDER } })
    adders.push(new Promise((resolve, reject) => worker.on('exit', resolve).on('error', reject)))
  }
  await Promise.all(adders)
  const total = (PROCESSES + WORKERS) * PER_ADDER
  t.is(Atomics.load(new Int32Array(shm.buffer, 0, 1), 0), total)
  t.is(Atomics.load(new BigInt64Array(shm.buffer, 8, 1), 0), BigInt(total))
  shm.close()
})

test('many processes race to create one name: exactly one wins, every other gets EEXIST', async (t) => {
  const name = uniqueName('race')
  t.teardown(() => {
    try {
      SharedMemory.open(name).unlink()
    } catch {}
  })
  // The winner holds its segment until every racer has tried: on Windows a section, and with
  // it the name, is gone once its last handle closes, and the name could be won again.
  const outcomes: string[] = []
  const winners: ChildProcess[] = []
  const racers = await Promise.all(
    Array.from({ length: 12 }, () =>
      runChild('race-create.cjs', [name, 'hold'], {
        onMessage: (outcome, child) => {
          outcomes.push(outcome as string)
          if (outcome === 'created') winners.push(child)
          if (outcomes.length === 12) for (const winner of winners) winner.send('release')
        },
      }),
    ),
  )
  for (const { code, stderr } of racers) t.is(code, 0, stderr)
  t.is(outcomes.filter((o) => o === 'created').length, 1, outcomes.join(','))
  t.is(outcomes.filter((o) => o === 'EEXIST').length, 11, outcomes.join(','))
})

test('openers racing a creator get ENOENT or the full segment, never an empty one', async (t) => {
  const name = uniqueName('half')
  t.teardown(() => {
    try {
      SharedMemory.open(name).unlink()
    } catch {}
  })
  const openers = Array.from({ length: 6 }, () => runChild('race-open.cjs', [name, String(1 << 20)]))
  await new Promise((r) => setTimeout(r, 150))
  const creator = SharedMemory.create(1 << 20, { name })
  creator.buf[(1 << 20) - 1] = 7
  const results = await Promise.all(openers)
  for (const { code, messages, stderr } of results) {
    t.is(code, 0, stderr)
    const seen = messages[0] as { enoent: number; sizes: number[] }
    t.true(seen.sizes.every((s) => s === 1 << 20), JSON.stringify(seen.sizes.slice(0, 5)))
    t.true(seen.sizes.length > 0, 'each opener eventually attached')
  }
  creator.close()
})

test('ShareableList: writers in several processes and readers never tear values or pair a format with the wrong data', async (t) => {
  const sl = new ShareableList([0, 0, 0, 0, 0, 0, 0, 'abcdefg'])
  t.teardown(() => {
    sl.close()
    sl.shm.unlink()
  })
  const ms = '1500'
  const writers = [0, 1, 2].map((who) => runChild('list-stress.cjs', [sl.shm.name, 'writer', String(who), ms]))
  const readers = [0, 1].map(() => runChild('list-stress.cjs', [sl.shm.name, 'reader', '0', ms]))
  // CPython readers of every version alongside: they see writers' transient states (CPython
  // does not check), but must be able to keep reading, and read a clean list at the end.
  const pys = pythons()
  const pyReaders = pys.map((py) => runPythonAsync(py, PY_LIST_READER, [sl.shm.name, '1.5', 'null']))
  const done = await Promise.all([...writers, ...readers])
  for (const { status, stderr } of await Promise.all(pyReaders)) t.is(status, 0, stderr)
  for (const py of pys) {
    const final = JSON.parse(runPython(py, PY_LIST_FINAL, [sl.shm.name])) as unknown[]
    t.is(final.length, 8, `CPython ${py.label}`)
    t.true(final.slice(0, 7).every((v) => typeof v === 'number'), `CPython ${py.label}: ${JSON.stringify(final)}`)
  }
  for (const { code, stderr } of done) t.is(code, 0, stderr)
  const writes = done.slice(0, 3).map((r) => (r.messages[0] as { writes: number }).writes)
  const reads = done.slice(3).map((r) => r.messages[0] as { reads: number; bad: unknown[] })
  t.log(`writes per writer: ${writes.join(', ')}; full-list reads per reader: ${reads.map((r) => r.reads).join(', ')}`)
  for (const r of reads) t.deepEqual(r.bad, [])
  t.true(writes.every((w) => w > 1000))
})

/** CPython that reads list `argv[1]` for `argv[2]` seconds and compares every read with `argv[3]` (JSON). */
const PY_LIST_READER = `${PY_ATTACH}
import json, time
sl = shared_memory.ShareableList(name=sys.argv[1])
untrack(sl.shm)
expected = json.loads(sys.argv[3])
def show(v):
    return {"bytes": v.hex()} if isinstance(v, bytes) else v
reads, bad = 0, []
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    for _ in range(20):
        try:
            got = [show(v) for v in sl]
        except Exception as e:
            got = "%s: %s" % (type(e).__name__, e)
        reads += 1
        if got != expected and len(bad) < 10:
            bad.append(got)
        elif got != expected:
            bad.append(None)
print(json.dumps({"reads": reads, "bad": len(bad), "first": bad[:5]}))
sl.shm.close()
`

/** CPython that prints list `argv[1]` once, as JSON (bytes as hex). */
const PY_LIST_FINAL = `${PY_ATTACH}
import json
sl = shared_memory.ShareableList(name=sys.argv[1])
untrack(sl.shm)
print(json.dumps([v.hex() if isinstance(v, bytes) else v for v in sl]))
sl.shm.close()
`

function runPythonAsync(py: Python, code: string, args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(py.exe, ['-c', code, ...args], { env: py.env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('close', (status) => resolve({ status, stdout, stderr }))
  })
}

const PYS = pythons()
// Wine has no CPython: skipped there, saying so. Elsewhere CPython is part of the test setup.
needs('CPython', PYS.length > 0).serial('Node processes that only read a list leave CPython readers of every version undisturbed', async (t) => {
  const pys = PYS
  if (pys.length === 0) return t.fail('no CPython >= 3.9 on this machine')
  const values = [7, 2.5, true, null, 'abcdefg', Buffer.from('raw'), -(2 ** 40), 'héllo wörld']
  const sl = new ShareableList(values)
  t.teardown(() => {
    sl.close()
    sl.shm.unlink()
  })
  const expected = JSON.stringify(values.map((v) => (Buffer.isBuffer(v) ? { bytes: v.toString('hex') } : v)))
  const nodeReaders = [0, 1].map(() => runChild('list-reader.cjs', [sl.shm.name, '2500']))
  const pyReaders = pys.map((py) => runPythonAsync(py, PY_LIST_READER, [sl.shm.name, '2', expected]))
  const [nodes, pyResults] = await Promise.all([Promise.all(nodeReaders), Promise.all(pyReaders)])
  for (const { code, stderr } of nodes) t.is(code, 0, stderr)
  pyResults.forEach(({ status, stdout, stderr }, i) => {
    t.is(status, 0, stderr)
    const seen = JSON.parse(stdout) as { reads: number; bad: number; first: unknown[] }
    t.log(`CPython ${pys[i].label}: ${seen.reads} reads`)
    t.is(seen.bad, 0, `CPython ${pys[i].label} saw ${JSON.stringify(seen.first)}`)
    t.true(seen.reads > 0)
  })
  const reads = nodes.map((n) => (n.messages.find((m) => typeof m === 'object') as { reads: number } | undefined)?.reads ?? 0)
  t.true(reads.every((r) => r > 0), `Node reads: ${reads}`)
})

test.serial('openers racing a list creator get ENOENT or the whole list, never an empty or partial one', async (t) => {
  const name = uniqueName('lrace')
  // Big, so that creating it takes a while: openers race its whole write. Emulated, a tenth of
  // that still takes seconds (SHMKIT_ITERATION_SCALE).
  const items = Array.from({ length: iterations(1_000_000, 100_000) }, (_, i) => (i % 2 ? `item ${i}` : i))
  t.teardown(() => {
    try {
      SharedMemory.open(name).unlink()
    } catch {}
  })
  const started: ChildProcess[] = []
  const onMessage = (m: unknown, child: ChildProcess) => m === 'ready' && started.push(child)
  const openers = Array.from({ length: 4 }, () => runChild('list-race-open.cjs', [name], { onMessage }))
  await new Promise((r) => setTimeout(r, 300))
  const sl = new ShareableList(items, { name })
  // An opener not ready yet finds the list at its first open and needs no word; one that has
  // just ended needs none either (the callback takes the send's error).
  for (const child of started) if (child.connected) child.send('created', () => {})
  const results = await Promise.all(openers)
  for (const { code, messages, stderr } of results) {
    t.is(code, 0, stderr)
    const { seen } = messages.find((m) => m !== 'ready') as { enoent: number; seen: Array<{ length?: number; last?: unknown; error?: string }> }
    t.true(seen.length > 0, 'each opener eventually attached')
    for (const s of seen) t.deepEqual(s, { length: items.length, last: items.at(-1) })
  }
  sl.close()
})
