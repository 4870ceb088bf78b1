// `npm test`: the core's cargo tests, then the ava specs, then a check that /dev/shm holds
// no segment the run left behind. Exits non-zero if any step fails.
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const SHM_DIR = '/dev/shm'
const OURS = /^(psm_|shmkit)/

const segments = () => (existsSync(SHM_DIR) ? readdirSync(SHM_DIR).filter((n) => OURS.test(n)) : [])

function run(command, args) {
  console.log(`\n$ ${command} ${args.join(' ')}`)
  const { status, signal } = spawnSync(command, args, { stdio: 'inherit' })
  if (status !== 0) {
    console.error(`\n${command} ${args.join(' ')} failed (${signal ?? `exit ${status}`})`)
    process.exit(status || 1)
  }
}

const before = new Set(segments())
run('cargo', ['test', '--workspace', '--release'])
// ava's CLI through this Node, not `npx` (a .cmd shim on Windows that spawn cannot run).
run(process.execPath, [fileURLToPath(new URL('../node_modules/ava/entrypoints/cli.mjs', import.meta.url)), ...process.argv.slice(2)])

const leaked = segments().filter((n) => !before.has(n))
if (leaked.length > 0) {
  console.error(`\n/dev/shm holds ${leaked.length} segment(s) the test run left behind:\n  ${leaked.join('\n  ')}`)
  process.exit(1)
}
console.log(`\n/dev/shm check: no segment left behind (${before.size} were there before the run)`)
