import test from 'ava'

import { SharedMemory } from '../index.js'
import { needs, onlyWhere, PY_ATTACH, pythons, runPython, uniqueName } from './helpers.js'

const found = pythons()

needs('CPython', found.length > 0)('CPython 3.9 or newer is present for the interop tests', (t) => {
  t.log(`CPython versions: ${found.map((p) => p.label).join(', ')}`)
  t.true(found.length > 0)
})

for (const py of found) {
  onlyWhere(process.platform !== 'win32', 'a Windows section dies with its creator’s last handle; the other direction covers Windows')(`Python ${py.label} creates, Node opens, reads and writes, Python sees it`, (t) => {
    const name = uniqueName(`py${py.version[1]}`)
    // Python creates the segment, writes bytes, and must not unlink it when it exits.
    runPython(
      py,
      `${PY_ATTACH}
from multiprocessing import shared_memory, resource_tracker
shm = shared_memory.SharedMemory(name=sys.argv[1], create=True, size=4096)
untrack(shm)
shm.buf[:11] = b"from python"
shm.close()
`,
      [name],
    )
    t.teardown(() => {
      try {
        SharedMemory.open(name).unlink()
      } catch {}
    })
    const shm = SharedMemory.open(name)
    t.is(shm.size, 4096)
    t.is(shm.buf.toString('latin1', 0, 11), 'from python')
    shm.buf.write('from node!!', 100)
    const seen = runPython(py, `${PY_ATTACH}\nshm = attach(sys.argv[1])\nprint(bytes(shm.buf[100:111]).decode())\nshm.close()`, [name])
    t.is(seen.trim(), 'from node!!')
    shm.close()
  })

  test(`Node creates, Python ${py.label} attaches and writes, Node sees it`, (t) => {
    const shm = SharedMemory.create(1024)
    t.teardown(() => shm.unlink())
    shm.buf.write('node wrote this', 0)
    const out = runPython(
      py,
      `${PY_ATTACH}
shm = attach(sys.argv[1])
print(shm.size, bytes(shm.buf[:15]).decode())
shm.buf[500:506] = b"python"
shm.close()
`,
      [shm.name],
    )
    t.is(out.trim(), '1024 node wrote this')
    t.is(shm.buf.toString('latin1', 500, 506), 'python')
    // Python exited; the segment must still exist (Python did not track it).
    const again = SharedMemory.open(shm.name)
    again.close()
    shm.close()
  })
}
