// Runs the core's cargo test binaries under valgrind memcheck: no definite leak, no invalid
// access. (The property tests and the peer-crate test are left out: too slow under valgrind,
// and the peer's own leaks are not ours. mapping_budget maps segments up to three quarters of
// vm.max_map_count, more than valgrind's own segment table holds: "VG_N_SEGMENTS is too low".)
import { execFileSync, spawnSync } from 'node:child_process'

const SKIP = new Set(['list_properties', 'shared_memory_crate_peer', 'mapping_budget'])
const out = execFileSync('cargo', ['test', '-p', 'shmkit-core', '--release', '--no-run', '--message-format=json'], {
  encoding: 'utf8',
  stdio: ['ignore', 'pipe', 'inherit'],
})
const binaries = out
  .split('\n')
  .filter(Boolean)
  .map((line) => JSON.parse(line))
  .filter((m) => m.reason === 'compiler-artifact' && m.executable && m.profile.test && !SKIP.has(m.target.name))

let failed = false
for (const { target, executable } of binaries) {
  const run = spawnSync(
    'valgrind',
    ['--quiet', '--leak-check=full', '--show-possibly-lost=no', '--show-reachable=no', '--errors-for-leak-kinds=definite', '--error-exitcode=9', executable, '--test-threads=1'],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  )
  console.log(`valgrind ${target.name}: ${run.status === 0 ? 'clean' : `FAILED (exit ${run.status})`}`)
  failed ||= run.status !== 0
}
process.exit(failed ? 1 : 0)
