import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'

import test from 'ava'

import { ShareableList, SharedMemory } from '../index.js'
import { onlyWhere, PY_ATTACH, pythons, runPython, uniqueName } from './helpers.js'

/** Python source that attaches to list `argv[1]` untracked, as the README recommends. */
const PY_ATTACH_LIST = `${PY_ATTACH}
import json
from multiprocessing import resource_tracker
def attach_list(name):
    # ShareableList(name=...) has no track argument, even on 3.13: unregister by hand.
    sl = shared_memory.ShareableList(name=name)
    untrack(sl.shm)
    return sl
def show(v):
    if isinstance(v, bytes):
        return {"bytes": v.hex()}
    return v
`

for (const py of pythons()) {
  onlyWhere(process.platform !== 'win32', 'a Windows section dies with its creator’s last handle; the other direction covers Windows')(`Python ${py.label} creates a list; Node reads it, changes items and types; Python sees the changes`, (t) => {
    const name = uniqueName(`pl${py.version[1]}`)
    runPython(
      py,
      `${PY_ATTACH_LIST}
sl = shared_memory.ShareableList(['howdy', b'HoWdY', -273.154, 100, None, True, 42, 'héllo'], name=sys.argv[1])
untrack(sl.shm)
sl.shm.close()
`,
      [name],
    )
    t.teardown(() => SharedMemory.open(name).unlink())
    const sl = ShareableList.open(name)
    t.deepEqual(sl.toArray(), ['howdy', Buffer.from('HoWdY'), -273.154, 100, null, true, 42, 'héllo'])
    t.is(sl.format, '8s8sdqxxxxxx?xxxxxxxx?q8s')
    sl.set(3, 'str now') // int -> str
    sl.set(0, null) // str -> None
    sl.set(4, 2.5) // None -> float
    sl.set(6, 2n ** 62n)
    sl.set(7, 'ééé') // 6 bytes in an 8-byte slot
    sl.set(1, Buffer.from([0, 1, 2]))
    const out = runPython(
      py,
      `${PY_ATTACH_LIST}
sl = attach_list(sys.argv[1])
print(json.dumps({"items": [show(v) for v in sl], "format": sl.format}))
sl[5] = 'py'
sl.shm.close()
`,
      [name],
    )
    t.deepEqual(JSON.parse(out), {
      items: [null, { bytes: '000102' }, -273.154, 'str now', 2.5, true, 2 ** 62, 'ééé'],
      format: 'xxxxxx?x8sd8sdxxxxxxx?q8s',
    })
    t.is(sl.get(5), 'py')
    sl.close()
  })

  test(`Node creates a list; Python ${py.label} attaches, reads, changes it; Node reads the changes`, (t) => {
    const texts = ['héllo', 'encodés', 'ééééé', '😀😀😀', '共享内存']
    const sl = new ShareableList([1, 2.5, true, null, Buffer.from('raw'), 2n ** 62n, ...texts])
    t.teardown(() => {
      sl.close()
      sl.shm.unlink()
    })
    const out = runPython(
      py,
      `${PY_ATTACH_LIST}
sl = attach_list(sys.argv[1])
print(json.dumps({"items": [show(v) for v in sl], "format": sl.format, "len": len(sl)}))
sl[0] = 'changed'
sl[3] = -7
sl[4] = b'\\x00\\xff'
sl.shm.close()
`,
      [sl.shm.name],
    )
    t.deepEqual(JSON.parse(out), {
      items: [1, 2.5, true, null, { bytes: Buffer.from('raw').toString('hex') }, 2 ** 62, ...texts],
      format: 'qdxxxxxxx?xxxxxx?x8sq8s8s16s16s16s',
      len: 11,
    })
    t.deepEqual(sl.toArray().slice(0, 5), ['changed', 2.5, true, -7, Buffer.from([0, 0xff])])
  })
}

function python38(): string | null {
  // pyenv's layout here is POSIX (bin/python3). Under Wine those Linux files are visible
  // through drive Z: but cannot run; the stored bytes below stand in.
  if (process.platform === 'win32') return null
  const exe = join(process.env.PYENV_ROOT ?? join(homedir(), '.pyenv'), 'versions', '3.8.18', 'bin', 'python3')
  return existsSync(exe) ? exe : null
}

test('a CPython 3.8 list (older layout) is refused with a clear message', (t) => {
  const name = uniqueName('py38')
  const exe = python38()
  const shm = SharedMemory.create(200, { name })
  t.teardown(() => shm.unlink())
  if (exe) {
    // Live CPython 3.8 writes its layout into our segment through a list of its own.
    const hexBytes = execFileSync(
      exe,
      ['-c', "from multiprocessing import shared_memory as s\nl=s.ShareableList([1,'ab',None])\nprint(bytes(l.shm.buf[:l.shm.size]).hex())\nl.shm.close(); l.shm.unlink()"],
      { encoding: 'utf8' },
    ).trim()
    Buffer.from(hexBytes, 'hex').copy(shm.buf)
  } else {
    t.log('python3.8 not found: using the bytes it wrote on the reference machine')
    Buffer.from(
      '0300000000000000080000000000000008000000000000000800000000000000010000000000000061620000000000000000000000000000710000000000000038730000000000007878787878783f78000103',
      'hex',
    ).copy(shm.buf)
  }
  t.throws(() => ShareableList.open(name), { code: 'ERR_SHM_CORRUPT', message: /CPython 3\.8/ })
  shm.close()
})
