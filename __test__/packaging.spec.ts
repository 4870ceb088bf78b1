// The published shape, proved from tarballs: `npm pack` the main package and the linux-x64-gnu
// platform package, install both into an empty project with no Rust toolchain on PATH, and use
// them from CommonJS, ESM and strict TypeScript. Linux x64 glibc only (what this machine builds).
import { execFileSync, spawnSync } from 'node:child_process'
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import test from 'ava'

import { needs, runs } from './helpers.js'

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

function npm(args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): string {
  return execFileSync('npm', args, { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}

let work = ''
let tarballs: { main: string; platform: string } | null = null

test.before(() => {
  if (!supported) return
  work = mkdtempSync(join(tmpdir(), 'shmkit-pack-'))
  // The main package, staged with the optionalDependencies `napi prepublish` writes.
  const stage = join(work, 'stage-main')
  mkdirSync(stage)
  for (const file of ['index.js', 'index.d.ts', 'README.md', 'LICENSE']) copyFileSync(join(ROOT, file), join(stage, file))
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

needs('npm', runs('npm'))('the main package holds only what users need and runs no install script', (t) => {
  const [dry] = JSON.parse(npm(['pack', '--dry-run', '--json'], ROOT))
  const files = dry.files.map((f: { path: string }) => f.path).sort()
  t.deepEqual(files, ['LICENSE', 'README.md', 'index.d.ts', 'index.js', 'package.json'])
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

test('installed from tarballs without Rust: CommonJS, ESM, strict TypeScript and the demo work', (t) => {
  if (!supported || !tarballs) return t.pass(`builds and packs only ${PLATFORM} here`)
  const project = join(work, 'consumer')
  mkdirSync(project)
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }))
  // No cargo or rustc: only the prebuilt binary can make this work.
  const path = (process.env.PATH ?? '')
    .split(delimiter)
    .filter((dir) => !existsSync(join(dir, 'cargo')) && !existsSync(join(dir, 'rustc')))
    .join(delimiter)
  const env = { ...process.env, PATH: [dirname(process.execPath), path].join(delimiter) }
  t.is(spawnSync('cargo', ['--version'], { env }).error?.message.includes('ENOENT'), true, 'cargo is off PATH')
  npm(['install', '--no-audit', '--no-fund', tarballs.main, tarballs.platform], project, env)
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

test('without its platform package the loader names what is missing', (t) => {
  if (!supported || !tarballs) return t.pass(`packs only ${PLATFORM} here`)
  const project = join(work, 'no-platform')
  mkdirSync(project)
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'np', version: '1.0.0', private: true }))
  npm(['install', '--no-audit', '--no-fund', '--omit=optional', tarballs.main], project)
  const result = spawnSync(process.execPath, ['-e', "try { require('shmkit') } catch (e) { let m = e.message; for (let c = e.cause; c; c = c.cause) m += ' | ' + c.message; console.log(m) }"], {
    cwd: project,
    encoding: 'utf8',
  })
  t.regex(result.stdout, /Cannot find native binding/)
  t.regex(result.stdout, new RegExp(`shmkit-${PLATFORM}`))
})
