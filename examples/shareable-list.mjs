// The Python tutorial's ShareableList example, in Node: the parent makes a list of five
// numbers, a forked child attaches by name and multiplies every item by 10, the parent sees
// the result, then removes the segment.
//
//   node examples/shareable-list.mjs
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'

import { ShareableList } from 'shmkit'

if (process.argv[2] === 'child') {
  const sl = ShareableList.open(process.argv[3])
  for (let i = 0; i < sl.length; i++) sl.set(i, sl.get(i) * 10)
  sl.close()
} else {
  const sl = new ShareableList([1, 2, 3, 4, 5])
  try {
    console.log(sl)
    console.log('before:', JSON.stringify(sl.toArray()))
    const child = fork(fileURLToPath(import.meta.url), ['child', sl.shm.name])
    const code = await new Promise((resolve) => child.on('exit', resolve))
    if (code !== 0) throw new Error(`child exited with ${code}`)
    console.log('after: ', JSON.stringify(sl.toArray()))
    console.log(sl)
  } finally {
    sl.close()
    sl.shm.unlink()
  }
}
