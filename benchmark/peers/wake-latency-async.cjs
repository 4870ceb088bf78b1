// The wake-up latency ping-pong of wake-latency.cjs with `await shm.waitAsync` instead of
// `shm.wait`: the wait sleeps on shmkit's shared waiter thread, which settles the promise on
// this process's event loop. Sends the one-way latencies it observed, in ns.
const { SharedMemory } = require('../../index.js')

const [name, parity, rounds] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])]
const shm = SharedMemory.open(name)
const turn = new Int32Array(shm.buffer, 0, 1)
const stamp = new BigInt64Array(shm.buffer, 8, 1)

async function main() {
  const samples = []
  for (let r = 0; r < rounds; r++) {
    let seen
    let slept = false
    while ((seen = Atomics.load(turn, 0)) % 2 !== parity) {
      await shm.waitAsync(0, seen)
      slept = true
    }
    if (slept && r > 0) samples.push(Number(process.hrtime.bigint() - Atomics.load(stamp, 0)))
    Atomics.store(stamp, 0, process.hrtime.bigint())
    Atomics.store(turn, 0, seen + 1)
    shm.notify(0, 1)
  }
  shm.close()
  process.send(samples)
}
main()
