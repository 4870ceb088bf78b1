// A Node process and a Python process working on one ShareableList: Node makes the Python
// tutorial's list, Python attaches by name, reads what Node wrote and writes back, and Node
// reads what Python wrote. Needs python3 ≥ 3.9 on PATH (pick one with PYENV_VERSION=…);
// without it, says so and exits 0.
//
//   node --import @oxc-node/core/register examples/python-and-node.mts   (part of `npm run demo`)
import { spawnSync } from 'node:child_process'

import { type Item, SharedMemoryManager } from 'shmkit'

// Attaching to a segment made elsewhere: CPython's resource tracker would unlink it when this
// Python process exits (gh-82300), so the script unregisters it.
const PYTHON = `
import os, sys
from multiprocessing import resource_tracker, shared_memory

a = shared_memory.ShareableList(name=sys.argv[1])
if os.name == "posix":  # Windows has no resource tracker
    resource_tracker.unregister(a.shm._name, "shared_memory")
print("python sees:", list(a))
print("python: a.format =", a.format)
a[2] = "dry ice"                     # a slot may change type
try:
    a[2] = "larger than previously allocated storage space"
except ValueError as e:
    print("python: ValueError:", e)
print("python: a.index(42) =", a.index(42), " a.count(b'HoWdY') =", a.count(b"HoWdY"))
a.shm.close()
`

function python(): string | null {
  const found = spawnSync('python3', ['-c', 'import sys; print(sys.version_info >= (3, 9))'], { encoding: 'utf8' })
  return found.status === 0 && found.stdout.trim() === 'True' ? 'python3' : null
}

const python3 = python()
if (python3 === null) {
  console.log('skipped: no python3 ≥ 3.9 on PATH, so no Python process to share a list with')
} else {
  using smm = new SharedMemoryManager()
  const a = smm.ShareableList<Item>(['howdy', Buffer.from('HoWdY'), -273.154, 100, null, true, 42])
  a.set(3, 1000) // Python sees this write...
  console.log('node:   a.format =', a.format)

  const run = spawnSync(python3, ['-c', PYTHON, a.shm.name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
  if (run.status !== 0) throw new Error(`python3 exited with ${run.status}`)
  process.stdout.write(run.stdout)

  console.log('node sees:', a.toArray()) // ...and Node sees Python's
  if (a.get(2) !== 'dry ice') throw new Error('Python’s write did not reach Node')
}
