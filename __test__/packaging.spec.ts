// The published shape, proved from tarballs: `npm pack` the main package and the linux-x64-gnu
// platform package, install both into an empty project with no Rust toolchain on PATH, and use
// them from CommonJS, ESM and strict TypeScript. Linux x64 glibc only (what this machine builds).
import { execFileSync, spawnSync } from 'node:child_process'
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import test from 'ava'

import { needs, onlyWhere } from './helpers.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'))
const PLATFORM = 'linux-x64-gnu'
const supported = process.platform === 'linux' && process.arch === 'x64' && existsSync(join(ROOT, `shmkit.${PLATFORM}.node`))

/** What `napi prepublish` adds to the main package: exact-version optional platform packages. */
function platformPackages(): Record<string, string> {
  const deps: Record<string, string> = {}
  for (const dir of ['darwin-arm64', 'darwin-x64', 'linux-arm64-gnu', 'linux-arm64-musl', 'linux-x64-gnu', 'linux-x64-musl', 'win32-arm64-msvc', 'win32-x64-msvc']) {
    deps[`shmkit-${dir}`] = pkg.version
  }
  return deps
}

/** npm's own script (npm-cli.js), run by this Node: wherever npm and node live. */
function findNpmCli(): string | null {
  const candidates = [process.env.npm_execpath ?? '']
  for (const dir of (process.env.PATH ?? '').split(delimiter)) candidates.push(join(dir, 'npm'))
  candidates.push(join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js'))
  for (const candidate of candidates) {
    try {
      const real = realpathSync(candidate)
      if (real.endsWith('npm-cli.js')) return real
    } catch {}
  }
  return null
}
const NPM_CLI = findNpmCli()
/** Whether this machine builds and packs: `test.before` then makes the tarballs, or fails. */
const packs = supported && NPM_CLI !== null

let work = ''
let tools = ''
let tarballs: { main: string; platform: string } | null = null

/**
 * The environment of every npm and consumer run: PATH is a directory holding only links to
 * this node, npm and sh (npm runs lifecycle scripts with sh), so no Rust toolchain can be
 * found however the machine's directories are laid out (cargo may share /usr/bin with node).
 */
function toolsEnv(): NodeJS.ProcessEnv {
  return { ...process.env, PATH: tools }
}

function npm(args: string[], cwd: string, env: NodeJS.ProcessEnv = toolsEnv()): string {
  return execFileSync(process.execPath, [NPM_CLI!, ...args], { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}

test.before(() => {
  if (!packs) return
  work = mkdtempSync(join(tmpdir(), 'shmkit-pack-'))
  tools = join(work, 'bin')
  mkdirSync(tools)
  symlinkSync(process.execPath, join(tools, 'node'))
  symlinkSync(NPM_CLI, join(tools, 'npm'))
  symlinkSync('/bin/sh', join(tools, 'sh'))
  // The main package, staged with the optionalDependencies `napi prepublish` writes.
  const stage = join(work, 'stage-main')
  mkdirSync(stage)
  for (const file of [...pkg.files, 'README.md', 'LICENSE']) copyFileSync(join(ROOT, file), join(stage, file))
  writeFileSync(join(stage, 'package.json'), JSON.stringify({ ...pkg, optionalDependencies: platformPackages() }, null, 2))
  // The platform package: npm/linux-x64-gnu plus the binary, as `napi artifacts` places it.
  const platformStage = join(work, 'stage-platform')
  cpSync(join(ROOT, 'npm', PLATFORM), platformStage, { recursive: true })
  copyFileSync(join(ROOT, `shmkit.${PLATFORM}.node`), join(platformStage, `shmkit.${PLATFORM}.node`))
  const packed = (dir: string) => join(work, JSON.parse(npm(['pack', '--json', '--pack-destination', work], dir))[0].filename)
  tarballs = { main: packed(stage), platform: packed(platformStage) }
})

test.after.always(() => {
  if (work) rmSync(work, { recursive: true, force: true })
})

needs('npm', NPM_CLI !== null)('the main package holds only what users need and runs no install script', (t) => {
  const [dry] = JSON.parse(npm(['pack', '--dry-run', '--json'], ROOT, process.env))
  const files = dry.files.map((f: { path: string }) => f.path).sort()
  t.deepEqual(files, ['LICENSE', 'README.md', 'index.d.ts', 'index.js', 'main.js', 'package.json'])
  for (const hook of ['preinstall', 'install', 'postinstall', 'prepare']) t.falsy(pkg.scripts?.[hook], hook)
})

test('every platform package declares os, cpu and libc', (t) => {
  const expected: Record<string, [string, string, string?]> = {
    'darwin-arm64': ['darwin', 'arm64'],
    'darwin-x64': ['darwin', 'x64'],
    'linux-arm64-gnu': ['linux', 'arm64', 'glibc'],
    'linux-arm64-musl': ['linux', 'arm64', 'musl'],
    'linux-x64-gnu': ['linux', 'x64', 'glibc'],
    'linux-x64-musl': ['linux', 'x64', 'musl'],
    'win32-arm64-msvc': ['win32', 'arm64'],
    'win32-x64-msvc': ['win32', 'x64'],
  }
  for (const [dir, [os, cpu, libc]] of Object.entries(expected)) {
    const platform = JSON.parse(readFileSync(join(ROOT, 'npm', dir, 'package.json'), 'utf8'))
    t.is(platform.name, `shmkit-${dir}`)
    t.is(platform.version, pkg.version)
    t.deepEqual(platform.os, [os])
    t.deepEqual(platform.cpu, [cpu])
    t.deepEqual(platform.libc, libc ? [libc] : undefined)
    t.deepEqual(platform.files, [`shmkit.${dir}.node`])
  }
})

onlyWhere(packs, `builds and packs only ${PLATFORM} here`)('installed from tarballs without Rust: CommonJS, ESM, strict TypeScript and the demo work', (t) => {
  const project = join(work, 'consumer')
  mkdirSync(project)
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }))
  // No cargo or rustc: only the prebuilt binary can make this work.
  const env = toolsEnv()
  t.deepEqual(readdirSync(tools).sort(), ['node', 'npm', 'sh'])
  t.is((spawnSync('cargo', ['--version'], { env }).error as NodeJS.ErrnoException)?.code, 'ENOENT', 'cargo is off PATH')
  npm(['install', '--no-audit', '--no-fund', tarballs!.main, tarballs!.platform], project, env)
  t.false(existsSync(join(project, 'node_modules', 'shmkit', 'src')), 'no Rust sources shipped')

  const run = (args: string[]) => execFileSync(process.execPath, args, { cwd: project, env, encoding: 'utf8' })
  t.is(
    run(['-e', "const { SharedMemory } = require('shmkit'); const s = SharedMemory.create(8); s.buf[0] = 7; console.log(s.buf[0]); s.close(); s.unlink()"]).trim(),
    '7',
  )
  t.is(
    run(['--input-type=module', '-e', "import { SharedMemory, ShareableList, SharedMemoryManager } from 'shmkit'; const l = new ShareableList([1]); console.log(typeof SharedMemory, typeof SharedMemoryManager, l.get(0)); l.close(); l.shm.unlink()"]).trim(),
    'function function 1',
  )

  writeFileSync(
    join(project, 'consumer.ts'),
    `import { SharedMemory, ShareableList, SharedMemoryManager, type Item } from 'shmkit'

export function demo(): Item[] {
  using shm = SharedMemory.create(64)
  shm.unlink()
  const view: Buffer = shm.buf
  view[0] = 1
  using smm = new SharedMemoryManager()
  const list: ShareableList = smm.ShareableList([1, 'two', null, true, 3n, new Uint8Array([4])])
  const first: Item = list.get(0)
  list.set(1, 'zwei')
  const all: Item[] = [...list, first]
  return all
}
`,
  )
  writeFileSync(
    join(project, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        target: 'ES2022',
        lib: ['ES2022', 'ESNext.Disposable'],
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        types: ['node'],
        typeRoots: [join(ROOT, 'node_modules', '@types')],
      },
      files: ['consumer.ts'],
    }),
  )
  const tsc = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', project], { encoding: 'utf8', env })
  t.is(tsc.status, 0, tsc.stdout + tsc.stderr)

  copyFileSync(join(ROOT, 'examples', 'shareable-list.mjs'), join(project, 'demo.mjs'))
  const demo = run(['demo.mjs'])
  t.regex(demo, /after: {2}\[10,20,30,40,50\]/)
})

onlyWhere(packs, `packs only ${PLATFORM} here`)('without its platform package the loader names what is missing', (t) => {
  const project = join(work, 'no-platform')
  mkdirSync(project)
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'np', version: '1.0.0', private: true }))
  npm(['install', '--no-audit', '--no-fund', '--omit=optional', tarballs!.main], project)
  const script = "try { require('shmkit') } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message, cause: e.cause && e.cause.message })) }"
  for (const args of [['-e', script], ['--input-type=module', '-e', `try { await import('shmkit') } ${script.slice(script.indexOf('catch'))}`]]) {
    const result = spawnSync(process.execPath, args, { cwd: project, encoding: 'utf8', env: toolsEnv() })
    const { code, message, cause } = JSON.parse(result.stdout)
    t.is(code, 'ERR_SHM_NO_BINDING')
    // The package to install comes first, before any word on npm bugs or WebAssembly.
    t.regex(message, new RegExp(`^shmkit has no native binary for this platform \\(linux-x64\\): the package shmkit-${PLATFORM} is not installed`))
    t.regex(message, /npm run pack:local/)
    t.regex(cause, /^Cannot find native binding/)
  }
})

onlyWhere(packs, `packs only ${PLATFORM} here`)('a platform package packed without its binary fails loudly instead of packing nothing', (t) => {
  const empty = join(work, 'platform-without-binary')
  cpSync(join(ROOT, 'npm', PLATFORM), empty, { recursive: true })
  const out = join(work, 'empty-out')
  mkdirSync(out)
  const result = spawnSync(process.execPath, [NPM_CLI, 'pack', '--pack-destination', out], { cwd: empty, encoding: 'utf8', env: toolsEnv() })
  t.not(result.status, 0)
  t.regex(result.stderr, new RegExp(`shmkit\\.${PLATFORM}\\.node is missing; this package would be empty`))
  t.deepEqual(readdirSync(out), [], 'no tarball written')
})

onlyWhere(packs, `builds and packs only ${PLATFORM} here`)('from a checkout: npm run pack:local makes the two tarballs npm install takes', (t) => {
  const out = join(work, 'local')
  const env = { ...toolsEnv(), npm_execpath: NPM_CLI }
  const printed = execFileSync(process.execPath, [join(ROOT, 'scripts', 'pack-local.mjs'), '--out', out], { cwd: ROOT, env, encoding: 'utf8' })
  const made = readdirSync(out).sort()
  t.deepEqual(made, [`shmkit-${pkg.version}.tgz`, `shmkit-${PLATFORM}-${pkg.version}.tgz`])
  const command = printed.match(/npm install (.+)/)
  t.truthy(command, printed)
  const project = join(work, 'from-checkout')
  mkdirSync(project)
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'from-checkout', version: '1.0.0', private: true }))
  npm(['install', '--no-audit', '--no-fund', ...command![1].trim().split(' ')], project, env)
  const installed = JSON.parse(readFileSync(join(project, 'node_modules', 'shmkit', 'package.json'), 'utf8'))
  t.deepEqual(installed.optionalDependencies, { [`shmkit-${PLATFORM}`]: pkg.version }, 'only the platform that was built')
  const output = execFileSync(
    process.execPath,
    ['--input-type=module', '-e', "import { ShareableList } from 'shmkit'; const sl = new ShareableList([1, 2, 3]); console.log(sl.at(-1), JSON.stringify(sl) === JSON.stringify({ name: sl.shm.name })); sl.close(); sl.shm.unlink()"],
    { cwd: project, env, encoding: 'utf8' },
  )
  t.is(output.trim(), '3 true')
})
