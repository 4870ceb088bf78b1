import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import test from 'ava'

import { SharedMemory } from '../index.js'
import { PY_ATTACH, existsInDevShm, onlyWhere, pythons, runPython, uniqueName } from './helpers.js'

const linux = process.platform === 'linux'

/** A temporary directory with a file holding `precious`, and a symlink helper; all removed on teardown. */
function plant(t: { teardown: (fn: () => void) => void }) {
  const dir = mkdtempSync(join(tmpdir(), 'shmkit-link-'))
  const target = join(dir, 'target')
  writeFileSync(target, 'precious')
  const links: string[] = []
  t.teardown(() => {
    for (const link of links) {
      try {
        unlinkSync(link)
      } catch {}
    }
    rmSync(dir, { recursive: true, force: true })
  })
  const link = (name: string, to: string) => {
    const path = join('/dev/shm', name)
    symlinkSync(to, path)
    links.push(path)
  }
  return { dir, target, link }
}

onlyWhere(linux, 'POSIX shm names elsewhere live outside the filesystem')('open refuses a symlink planted at /dev/shm/<name> with ELOOP, and its target is untouched', (t) => {
  const { target, link } = plant(t)
  const name = uniqueName('link')
  link(name, target)
  t.throws(() => SharedMemory.open(name), { code: 'ELOOP' })
  t.throws(() => new SharedMemory({ name }), { code: 'ELOOP' })
  t.is(readFileSync(target, 'utf8'), 'precious')
})

onlyWhere(linux, 'POSIX shm names elsewhere live outside the filesystem')('create refuses a symlink at the name, live or dangling, and writes nothing through it', (t) => {
  const { dir, target, link } = plant(t)
  const live = uniqueName('link')
  link(live, target)
  t.throws(() => SharedMemory.create(4096, { name: live }), { code: 'EEXIST' })
  const dangling = uniqueName('link')
  const nowhere = join(dir, 'nowhere')
  link(dangling, nowhere)
  t.throws(() => SharedMemory.create(4096, { name: dangling }), { code: 'EEXIST' })
  t.is(readFileSync(target, 'utf8'), 'precious')
  t.false(existsSync(nowhere), 'create made the dangling link’s target')
})

/** A name of exactly `bytes` bytes, unique to this test run. */
function longName(bytes: number): string {
  const base = uniqueName('long')
  return base + 'x'.repeat(bytes - base.length)
}

onlyWhere(linux, 'Linux NAME_MAX; macOS allows 30 bytes, Windows 260 UTF-16 units')('a 255-byte name works on Linux; 256 bytes is ERR_SHM_INVALID_NAME before any syscall', (t) => {
  const name = longName(255)
  const shm = SharedMemory.create(64, { name })
  t.teardown(() => rmSync(join('/dev/shm', name), { force: true }))
  shm.buf.write('long')
  const again = SharedMemory.open(name)
  t.is(again.buf.toString('utf8', 0, 4), 'long')
  again.close()
  shm.close()
  shm.unlink()
  const tooLong = longName(256)
  t.throws(() => SharedMemory.create(64, { name: tooLong }), { code: 'ERR_SHM_INVALID_NAME' })
  t.throws(() => SharedMemory.open(tooLong), { code: 'ERR_SHM_INVALID_NAME' })
  t.false(existsInDevShm(tooLong))
})

for (const py of pythons()) {
  onlyWhere(linux, 'Linux NAME_MAX')(`Python ${py.label} and Node share a segment with a 255-byte name, both ways`, (t) => {
    const fromPython = longName(255)
    const fromNode = longName(255)
    // Through the file system: a build that cannot open the name must not leak it either.
    t.teardown(() => {
      for (const name of [fromPython, fromNode]) rmSync(join('/dev/shm', name), { force: true })
    })
    runPython(
      py,
      `${PY_ATTACH}
shm = shared_memory.SharedMemory(name=sys.argv[1], create=True, size=4096)
untrack(shm)
shm.buf[:6] = b"python"
shm.close()
`,
      [fromPython],
    )
    const opened = SharedMemory.open(fromPython)
    t.is(opened.buf.toString('utf8', 0, 6), 'python')
    opened.close()
    opened.unlink()

    const created = SharedMemory.create(4096, { name: fromNode })
    created.buf.write('node')
    const seen = runPython(py, `${PY_ATTACH}\nshm = attach(sys.argv[1])\nprint(bytes(shm.buf[:4]).decode())\nshm.close()`, [fromNode])
    t.is(seen.trim(), 'node')
    created.close()
    created.unlink()
  })
}
