// shm-typed-array's POSIX create+destroy and attach+detach of 4 KiB, in a process of its own:
// its buffers unmap only when garbage collected, so a long loop piles up mappings.
// Usage: node sta-ops.cjs MODULE_DIR ROUNDS ITERATIONS -> JSON of median ns per operation.
const shm = require(process.argv[2])
const [rounds, iters] = [Number(process.argv[3]), Number(process.argv[4])]

function medianRound(op) {
  const perOp = []
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < iters; i++) op()
    perOp.push(Number(process.hrtime.bigint() - t0) / iters)
    if (global.gc) global.gc()
  }
  perOp.sort((a, b) => a - b)
  return perOp[Math.floor(perOp.length / 2)]
}

let n = 0
const create = medianRound(() => {
  const key = `/shmkit_bench_sta_${process.pid}_${n++}`
  shm.create(4096, 'Buffer', key)
  shm.destroy(key)
})
const seed = `/shmkit_bench_sta_seed_${process.pid}`
shm.create(4096, 'Buffer', seed)
const open = medianRound(() => {
  shm.get(seed, 'Buffer')
  shm.detach(seed)
})
shm.destroy(seed)
console.log(JSON.stringify({ create, open }))
