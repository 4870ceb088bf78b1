import { type ChildProcess, execFileSync, fork, spawnSync } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { homedir } from 'node:os'
import { delimiter, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import test, { type TestFn } from 'ava'

export const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url))

/**
 * Whether this is Windows emulated by Wine (scripts/cross/wine.sh), which has `winecfg.exe`
 * where Windows never does.
 */
export const UNDER_WINE =
  process.platform === 'win32' && existsSync(join(process.env.SystemRoot ?? 'C:\\windows', 'system32', 'winecfg.exe'))

/**
 * `test` for a spec that needs `tool` (CPython, npm, cargo): when the tool is missing under
 * Wine, which has none of them, `test.skip` instead, printing why. Anywhere else a missing
 * tool still fails the spec: these tools are part of the test setup there.
 */
export function needs(tool: string, present: boolean): TestFn {
  return present || !UNDER_WINE ? test : skipping((title) => `skipped under Wine, which has no ${tool}: ${title}`)
}

/**
 * `test.skip` as a TestFn that first prints `line(title)`, so the emulated runs' summaries
 * (scripts/cross/lib-tree.sh) list every skip with its reason. `needs(…).serial(…)` too: a
 * skipped test has no order to keep.
 */
function skipping(line: (title: string) => string): TestFn {
  const skip = (title: string, ...rest: unknown[]) => {
    console.log(line(title))
    return (test.skip as (...args: unknown[]) => void)(title, ...rest)
  }
  return Object.assign(skip, { serial: skip }) as unknown as TestFn
}

/**
 * `test` where `holds` (the platform has what the spec is about: /proc, /dev/shm, POSIX
 * lifetimes…); elsewhere `test.skip`, printing `reason`, instead of a pass that checked
 * nothing. `reason` must hold no colon (see `nativeOnly`).
 */
export function onlyWhere(holds: boolean, reason: string): TestFn {
  return holds ? test : skipping((title) => `skipped on ${process.platform}, ${reason}: ${title}`)
}

/**
 * The emulator this spec runs under, as the emulated runs declare it (scripts/cross/qemu-arm64.sh
 * sets SHMKIT_EMULATOR=qemu-user), or Wine, which is recognized by its files; '' on hardware.
 */
export const EMULATOR = process.env.SHMKIT_EMULATOR || (UNDER_WINE ? 'Wine' : '')

/**
 * `n` iterations scaled by SHMKIT_ITERATION_SCALE, a factor in (0, 1] that an emulated run sets
 * (under qemu-user every JS and native instruction is translated, 10–50× slower): the spec
 * asserts the same behaviour over fewer rounds. At least `min`; unset, exactly `n`.
 */
export function iterations(n: number, min = 1): number {
  const raw = process.env.SHMKIT_ITERATION_SCALE
  if (raw === undefined || raw === '') return n
  const scale = Number(raw)
  if (!(scale > 0 && scale <= 1)) throw new Error(`SHMKIT_ITERATION_SCALE must be a number in (0, 1], not ${JSON.stringify(raw)}`)
  return Math.max(min, Math.round(n * scale))
}

/**
 * `test` natively; under an emulator `test.skip` instead, printing the reason (for specs whose
 * subject does not depend on the platform and that the native run already covers). `reason`
 * must hold no colon: scripts/cross/lib-tree.sh's summary reads up to the first one.
 */
export function nativeOnly(reason: string): TestFn {
  return EMULATOR ? skipping((title) => `skipped under ${EMULATOR}, run natively only (${reason}): ${title}`) : test
}

/** Whether `command` runs here (`--version` exits 0). */
export function runs(command: string): boolean {
  return spawnSync(command, ['--version'], { stdio: 'ignore', shell: process.platform === 'win32' }).status === 0
}

let counter = 0
/**
 * A name no other test (or test run) uses: prefix, tag, pid, counter, random — at most 30
 * bytes, macOS's limit, for tags of up to 6 characters.
 */
export function uniqueName(tag = 't'): string {
  counter += 1
  const random = Math.floor(Math.random() * 36 ** 4).toString(36).padStart(4, '0')
  return `shmkit_${tag.slice(0, 6)}_${process.pid.toString(36)}${counter.toString(36)}${random}`
}

/** Whether /dev/shm has an entry for this segment name (Linux). */
export function existsInDevShm(name: string): boolean {
  return existsSync(join('/dev/shm', name))
}

export function devShmMode(name: string): number {
  return statSync(join('/dev/shm', name)).mode & 0o777
}

/** Runs a fixture in a forked Node child; resolves with its exit code, signal and messages. */
export function runChild(
  script: string,
  args: string[] = [],
  options: { execArgv?: string[]; onMessage?: (message: unknown, child: ChildProcess) => void } = {},
): Promise<{ code: number | null; signal: NodeJS.Signals | null; messages: unknown[]; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = fork(join(FIXTURES, script), args, { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], execArgv: options.execArgv ?? [] })
    const messages: unknown[] = []
    let stderr = ''
    child.stderr!.on('data', (d) => (stderr += d))
    child.stdout!.resume()
    child.on('message', (m) => {
      messages.push(m)
      options.onMessage?.(m, child)
    })
    child.on('error', reject)
    // 'close', not 'exit': only then are the last IPC messages and stderr bytes in (a child
    // that sends and exits at once could otherwise resolve with no message).
    child.on('close', (code, signal) => resolve({ code, signal, messages, stderr }))
  })
}

export interface Python {
  exe: string
  env: NodeJS.ProcessEnv
  version: [number, number]
  label: string
}

/** Every CPython >= 3.9 on the machine: pyenv's versions and python3 on PATH, one per version. */
export function pythons(): Python[] {
  const candidates: string[] = []
  const pyenvRoot = process.env.PYENV_ROOT ?? join(homedir(), '.pyenv')
  const versionsDir = join(pyenvRoot, 'versions')
  if (existsSync(versionsDir)) {
    for (const v of readdirSync(versionsDir)) {
      const exe = join(versionsDir, v, 'bin', 'python3')
      if (existsSync(exe)) candidates.push(exe)
    }
  }
  // SHMKIT_PYTHONS (paths separated by the OS's delimiter) names interpreters explicitly,
  // as the GitHub workflow does with setup-python's outputs.
  for (const exe of (process.env.SHMKIT_PYTHONS ?? '').split(delimiter).filter(Boolean)) candidates.push(exe)
  candidates.push('python3', 'python')
  const seen = new Map<string, Python>()
  for (const exe of candidates) {
    const probe = spawnSync(exe, ['-c', 'import sys; print("%d.%d" % sys.version_info[:2])'], { encoding: 'utf8' })
    if (probe.status !== 0) continue
    const [major, minor] = probe.stdout.trim().split('.').map(Number)
    if (major !== 3 || minor < 9) continue
    const label = `${major}.${minor}`
    if (!seen.has(label)) seen.set(label, { exe, env: pythonEnv(), version: [major, minor], label })
  }
  return [...seen.values()].sort((a, b) => a.version[1] - b.version[1])
}

function pythonEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env }
  delete env.PYENV_VERSION
  return env
}

/** Runs Python code with argv; throws with its stderr when it fails. */
export function runPython(py: Python, code: string, args: string[] = []): string {
  return execFileSync(py.exe, ['-c', code, ...args], { encoding: 'utf8', env: py.env, stdio: ['ignore', 'pipe', 'pipe'] })
}

/**
 * Python code that attaches to a segment made elsewhere without handing it to Python's
 * resource tracker, which would unlink it when Python exits (gh-82300): `track=False` on
 * 3.13+, `resource_tracker.unregister` before that.
 */
export const PY_ATTACH = `
import os, sys
from multiprocessing import shared_memory, resource_tracker
def untrack(shm):
    # Windows has no resource tracker: sections die with their last handle.
    if os.name == "posix":
        resource_tracker.unregister(shm._name, "shared_memory")
def attach(name):
    if sys.version_info >= (3, 13):
        return shared_memory.SharedMemory(name=name, track=False)
    shm = shared_memory.SharedMemory(name=name)
    untrack(shm)
    return shm
`
