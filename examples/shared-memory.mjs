// The Python tutorial's SharedMemory flow, in Node: the parent puts five int64 values in a
// segment, a forked child attaches by name and multiplies each by 10, the parent sees it.
//
//   node examples/shared-memory.mjs
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'

import { SharedMemory } from 'shmkit'

const asNumbers = (shm) => Array.from(new BigInt64Array(shm.buffer, 0, 5), Number)

if (process.argv[2] === 'child') {
  // The child: attach by name, change the numbers in place, detach.
  const shm = SharedMemory.open(process.argv[3])
  const values = new BigInt64Array(shm.buffer, 0, 5)
  for (let i = 0; i < values.length; i++) values[i] *= 10n
  shm.close()
} else {
  const shm = SharedMemory.create(5 * 8)
  try {
    new BigInt64Array(shm.buffer, 0, 5).set([1n, 2n, 3n, 4n, 5n])
    console.log(shm)
    console.log('before:', JSON.stringify(asNumbers(shm)))
    const child = fork(fileURLToPath(import.meta.url), ['child', shm.name])
    const code = await new Promise((resolve) => child.on('exit', resolve))
    if (code !== 0) throw new Error(`child exited with ${code}`)
    console.log('after: ', JSON.stringify(asNumbers(shm)))
  } finally {
    shm.close()
    shm.unlink()
  }
}
