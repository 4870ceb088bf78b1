// The Python tutorial's SharedMemoryManager example, as a Node user writes it in TypeScript:
// a manager in a `using` block makes a ShareableList, a forked child multiplies every item
// by 10, and the end of the block shuts the manager down, which unlinks everything it made.
//
//   node --import @oxc-node/core/register examples/tutorial.mts     (part of `npm run demo`)
import { fork } from 'node:child_process'
import { once } from 'node:events'

import { ShareableList, SharedMemory, SharedMemoryManager } from 'shmkit'

if (process.argv[2] === 'child') {
  // The list arrives as { name } (its toJSON()); the items stay where they are.
  const [message] = (await once(process, 'message')) as [{ name: string }]
  using sl = ShareableList.open<number>(message)
  for (let i = 0; i < sl.length; i++) sl.set(i, sl.get(i) * 10)
  process.disconnect()
} else {
  let name: string
  {
    using smm = new SharedMemoryManager()
    const sl = smm.ShareableList([1, 2, 3, 4, 5]) // get/set/at/toArray: numbers
    name = sl.shm.name
    console.log(sl)

    const child = fork(import.meta.filename, ['child']) // the child runs this file too
    child.send(sl)
    const [code] = await once(child, 'exit')
    if (code !== 0) throw new Error(`the child exited with ${code}`)

    console.log('after the child:', sl.toArray(), 'sum:', [...sl].reduce((a, b) => a + b, 0))
    console.log('last item, sl.at(-1):', sl.at(-1))
  } // smm.shutdown(): every segment it made is unlinked

  try {
    SharedMemory.open(name).close()
    throw new Error(`${name} outlived its manager`)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    console.log(`after the block: ${name} is gone (ENOENT)`)
  }
}
