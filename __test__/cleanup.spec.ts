import { execFileSync, fork, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'

import test from 'ava'

import { SharedMemory, trackerPid } from '../index.js'
import { FIXTURES, onlyWhere, runChild, uniqueName } from './helpers.js'

const posix = process.platform !== 'win32'

function exists(name: string): boolean {
  if (process.platform === 'linux') return existsSync(join('/dev/shm', name))
  try {
    SharedMemory.open(name).close()
    return true
  } catch {
    return false
  }
}

/** Waits up to `ms` for every name to disappear; returns the ones still there. */
async function goneWithin(names: string[], ms = 2000): Promise<string[]> {
  const deadline = Date.now() + ms
  let left = names.filter(exists)
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20))
    left = left.filter(exists)
  }
  return left
}

interface Report {
  names: string[]
  untracked: string
  helper: number | null
}

function start(how: string, detached = false): Promise<{ child: ChildProcess; report: Report }> {
  return new Promise((resolve, reject) => {
    const child = fork(join(FIXTURES, 'exit-paths.cjs'), [how], { detached, stdio: ['ignore', 'ignore', 'pipe', 'ipc'] })
    child.stderr!.resume()
    child.once('message', (report) => resolve({ child, report: report as Report }))
    child.once('error', reject)
  })
}

const exited = (child: ChildProcess) =>
  new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve({ code: child.exitCode, signal: child.signalCode })
    else child.once('exit', (code, signal) => resolve({ code, signal }))
  })

// The creator ends on its own once told to go, after the parent has seen its segments.
const go = (c: ChildProcess) => c.send('go')
const paths: Array<[string, string, (child: ChildProcess) => void]> = [
  ['returns normally', 'return', go],
  ['calls process.exit(3)', 'exit', go],
  ['throws an uncaught exception', 'throw', go],
  ['is SIGTERMed', 'sigterm', (c) => c.kill('SIGTERM')],
  ['is SIGKILLed', 'sigkill', (c) => c.kill('SIGKILL')],
  ['has its whole process group SIGKILLed', 'group', (c) => process.kill(-c.pid!, 'SIGKILL')],
  ['crashes natively (SIGSEGV)', 'crash', go],
]

// POSIX: the tracker unlinks what was tracked; `track: false` outlives its creator. Windows:
// every section, tracked or not, dies with its creator's last handle, by whatever path it ends.
for (const [what, how, end] of paths) {
  onlyWhere(posix || (how !== 'group' && how !== 'crash'), 'process groups and SIGSEGV are POSIX')(`a creator that ${what} leaves none of its segments behind`, async (t) => {
    const { child, report } = await start(how, how === 'group')
    t.teardown(() => {
      child.kill('SIGKILL')
      for (const name of [...report.names, report.untracked]) {
        try {
          SharedMemory.open(name).unlink()
        } catch {}
      }
    })
    t.is(report.names.length, 4)
    const missing = report.names.filter((name) => !exists(name))
    t.deepEqual(missing, [], `the segments existed while the creator lived (it has ${child.exitCode === null ? 'not ' : ''}ended: ${child.exitCode ?? ''} ${child.signalCode ?? ''})`)
    end(child)
    const status = await exited(child)
    t.log(`creator ended with ${JSON.stringify(status)}`)
    t.deepEqual(await goneWithin(report.names), [])
    if (posix) t.true(exists(report.untracked), 'track: false outlives its creator')
    else t.deepEqual(await goneWithin([report.untracked]), [], 'Windows: an untracked section dies with its creator too')
  })
}

test('attaching never unlinks: a process that attaches and exits leaves the segment', async (t) => {
  const shm = SharedMemory.create(64)
  t.teardown(() => shm.unlink())
  const { code } = await runChild('child-writes.cjs', [shm.name, 'attached'])
  t.is(code, 0)
  await new Promise((r) => setTimeout(r, 300))
  t.true(exists(shm.name))
  const again = SharedMemory.open(shm.name)
  t.is(again.buf.toString('utf8', 0, 8), 'attached')
  again.close()
  shm.close()
})

onlyWhere(posix, 'Windows sections die with their last handle, so nothing is tracked')('unlink() forgets the tracking: no double unlink of a re-created name', async (t) => {
  const child = fork(
    join(FIXTURES, 'unlink-then-recreate.cjs'),
    [],
    { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] },
  )
  const name: string = await new Promise((resolve) => child.once('message', resolve as never))
  t.teardown(() => {
    try {
      SharedMemory.open(name).unlink()
    } catch {}
  })
  await exited(child)
  await new Promise((r) => setTimeout(r, 300))
  t.true(exists(name), 'the name re-created untracked by someone else survives')
})

onlyWhere(posix, 'Windows sections die with their last handle, so nothing is tracked')('a killed helper is restarted on the next create, and every name is re-registered', async (t) => {
  const child = fork(join(FIXTURES, 'helper-killed.cjs'), [], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] })
  let stderr = ''
  child.stderr!.on('data', (d) => (stderr += d))
  const messages: Array<{ name: string; helper: number }> = []
  const next = () => new Promise<{ name: string; helper: number }>((resolve) => child.once('message', resolve as never))
  messages.push(await next())
  const first = messages[0]
  t.teardown(() => {
    child.kill('SIGKILL')
    for (const { name } of messages) {
      try {
        SharedMemory.open(name).unlink()
      } catch {}
    }
  })
  process.kill(first.helper, 'SIGKILL')
  await new Promise((r) => setTimeout(r, 100))
  t.true(exists(first.name), 'killing the helper unlinks nothing')
  child.send('create')
  messages.push(await next())
  const second = messages[1]
  t.not(second.helper, first.helper, 'a new helper runs')
  child.kill('SIGKILL')
  await exited(child)
  t.deepEqual(await goneWithin([first.name, second.name]), [], stderr)
})

onlyWhere(posix, 'Windows sections die with their last handle, so nothing is tracked')('a stopped helper never blocks creates: a new one takes over every name', async (t) => {
  const child = fork(join(FIXTURES, 'helper-stopped.cjs'), [], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] })
  const next = () => new Promise<{ helper: number; names: string[]; ms?: number }>((resolve) => child.once('message', resolve as never))
  const first = await next()
  let last = first
  t.teardown(() => {
    child.kill('SIGKILL')
    try {
      process.kill(first.helper, 'SIGCONT')
    } catch {}
    for (const name of last.names) {
      try {
        SharedMemory.open(name).unlink()
      } catch {}
    }
  })
  process.kill(first.helper, 'SIGSTOP')
  child.send('burst')
  last = await next()
  t.log(`400 tracked creates with the helper stopped took ${last.ms} ms`)
  t.not(last.helper, first.helper)
  t.is(last.names.length, 401)
  child.kill('SIGKILL')
  await exited(child)
  t.deepEqual(await goneWithin(last.names, 3000), [])
})

test('a manager in a worker is shut down when the worker terminates; the main thread is untouched', async (t) => {
  const mine = SharedMemory.create(64)
  t.teardown(() => mine.unlink())
  const worker = new Worker(
    `const { SharedMemoryManager } = require(${JSON.stringify(join(FIXTURES, '../../index.js'))});
     const { parentPort } = require('node:worker_threads');
     globalThis.manager = new SharedMemoryManager();
     const shm = manager.SharedMemory(256);
     const list = manager.ShareableList([1, 2]);
     parentPort.postMessage([shm.name, list.shm.name]);
     setInterval(() => {}, 1000);`,
    { eval: true },
  )
  const names: string[] = await new Promise((resolve) => worker.once('message', resolve))
  t.true(names.every(exists))
  await worker.terminate()
  t.deepEqual(await goneWithin(names, 500), [])
  t.true(exists(mine.name))
  mine.close()
})

onlyWhere(process.platform === 'linux', 'reads /proc')('the helper is a separate process in its own session, and only runs while something is tracked', async (t) => {
  const { child, report } = await start('sigterm')
  t.truthy(report.helper)
  t.teardown(() => {
    child.kill('SIGKILL')
    SharedMemory.open(report.untracked).unlink()
  })
  const stat = (pid: number) => readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  const [, ppid, pgrp, session] = stat(report.helper!).map(Number)
  const [, , creatorGroup, creatorSession] = stat(child.pid!).map(Number)
  t.not(ppid, child.pid, 're-parented away from the creator')
  t.not(pgrp, creatorGroup, 'outside the creator’s process group')
  t.not(session, creatorSession, 'in a session of its own')
  child.kill('SIGTERM')
  await exited(child)
  t.deepEqual(await goneWithin(report.names), [])
  // Exited: gone, or a zombie where PID 1 (as in some containers) does not reap orphans.
  const deadline = Date.now() + 2000
  const alive = () => existsSync(`/proc/${report.helper}`) && stat(report.helper!)[0] !== 'Z'
  while (alive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  t.false(alive(), 'the helper exited after cleaning up')
})

test('this process runs a helper only once it tracks something', (t) => {
  if (!posix) return t.is(trackerPid(), null)
  const shm = SharedMemory.create(16)
  t.teardown(() => shm.unlink())
  t.is(typeof trackerPid(), 'number')
  shm.close()
})

/** Runs `code` (CommonJS, with `SharedMemory` in scope) in a separate Node process. */
function inAnotherProcess(code: string, args: string[]): void {
  execFileSync(
    process.execPath,
    ['-e', `const { SharedMemory } = require(${JSON.stringify(join(FIXTURES, '../../index.js'))});\n${code}`, ...args],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  )
}

/** Waits until process `pid` is gone (the tracking helper finishes its cleanup, then exits). */
async function processGone(pid: number, ms = 5000): Promise<boolean> {
  const deadline = Date.now() + ms
  for (;;) {
    try {
      process.kill(pid, 0)
    } catch {
      return true
    }
    if (Date.now() > deadline) return false
    await new Promise((r) => setTimeout(r, 20))
  }
}

/**
 * The A/B/C sequence of design.md's safety rule 7: A creates a segment its cleanup owns; B
 * attaches and unlinks it (the README's pattern); C creates the same name with `track: false`.
 * Returns A, the name and A's helper pid, with C's segment (8192 bytes) in place.
 */
async function recreatedByAnother(kind: 'tracked' | 'manager') {
  const child = fork(join(FIXTURES, 'recreated-name.cjs'), [kind], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] })
  child.stderr!.resume()
  const { name, helper } = await new Promise<{ name: string; helper: number }>((resolve, reject) => {
    child.once('message', resolve as never)
    child.once('error', reject)
  })
  inAnotherProcess('SharedMemory.open(process.argv[1]).unlink()', [name]) // B
  inAnotherProcess('SharedMemory.create(8192, { name: process.argv[1], track: false }).close()', [name]) // C
  return { child, name, helper }
}

function sizeOf(name: string): number {
  const shm = SharedMemory.open(name)
  const size = shm.size
  shm.close()
  return size
}

const endings: Array<[string, (child: ChildProcess) => void]> = [
  ['exits', (child) => child.send('exit')],
  ['is SIGKILLed', (child) => child.kill('SIGKILL')],
]

for (const [what, end] of endings) {
  onlyWhere(process.platform === 'linux', 'identity is compared where the OS gives shm objects an inode (Linux)')(`a creator that ${what} leaves alone a segment another process re-created under its name`, async (t) => {
    const { child, name, helper } = await recreatedByAnother('tracked')
    t.teardown(() => {
      child.kill('SIGKILL')
      try {
        SharedMemory.open(name).unlink()
      } catch {}
    })
    t.truthy(helper)
    end(child)
    await exited(child)
    t.true(await processGone(helper), 'the helper finished its cleanup')
    t.true(exists(name), "A's helper deleted C's segment")
    t.is(sizeOf(name), 8192)
  })
}

onlyWhere(posix, 'Windows sections die with their last handle')('a creator that makes its name again after someone unlinked it still cleans up the new segment', async (t) => {
  const child = fork(join(FIXTURES, 'recreated-name.cjs'), ['tracked'], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] })
  child.stderr!.resume()
  const next = () => new Promise<unknown>((resolve) => child.once('message', resolve))
  const { name } = (await next()) as { name: string }
  t.teardown(() => {
    child.kill('SIGKILL')
    try {
      SharedMemory.open(name).unlink()
    } catch {}
  })
  inAnotherProcess('SharedMemory.open(process.argv[1]).unlink()', [name])
  child.send('recreate')
  t.is(await next(), 'done')
  t.true(exists(name))
  child.kill('SIGKILL')
  await exited(child)
  t.deepEqual(await goneWithin([name]), [], 'the helper knew the new object')
})

// Reserving 2 GiB takes about half a second. On Linux the segment is built unnamed and tracked
// under its name before `linkat` gives it the name; with `shm_open` (other systems) the name
// exists from the start and is tracked right after. Either way a creator killed the moment its
// name appears, while the reservation may still run, leaves nothing behind.
onlyWhere(process.platform === 'linux', 'watches the name appear in /dev/shm')('a creator SIGKILLed the moment its big segment’s name appears leaves nothing behind', async (t) => {
  // A size the reservation takes long enough for, doubled until the kill lands before it ends.
  for (let size = 2 ** 30; size <= 2 ** 33; size *= 2) {
    const name = uniqueName('resv')
    const path = join('/dev/shm', name)
    const child = fork(join(FIXTURES, 'create-reserved.cjs'), [name, String(size)], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
    let created = false
    child.on('message', () => (created = true))
    const ended = exited(child)
    let appeared = false
    while (!appeared && child.exitCode === null) {
      appeared = existsSync(path)
      if (!appeared) await new Promise((r) => setTimeout(r, 1))
    }
    child.kill('SIGKILL')
    await ended
    t.teardown(() => {
      try {
        SharedMemory.open(name).unlink()
      } catch {}
    })
    t.true(appeared, 'the creator made the name')
    t.deepEqual(await goneWithin([name], 10_000), [], `a ${size}-byte segment killed mid-reservation is unlinked`)
    if (!created) return
    t.log(`${size} bytes were reserved before the kill landed: trying twice as many`)
  }
  t.fail('every reservation ended before the kill landed')
})

