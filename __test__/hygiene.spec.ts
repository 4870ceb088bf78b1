import test from 'ava'

import { runChild } from './helpers.js'

test('100 000 create/close/unlink cycles grow neither RSS nor open descriptors', async (t) => {
  if (process.platform !== 'linux') return t.pass('reads /proc/self')
  const { code, stderr, messages } = await runChild('churn.cjs', ['100000'], { execArgv: ['--expose-gc'] })
  t.is(code, 0, stderr)
  const { before, after } = messages[0] as { before: { rss: number; fds: number }; after: { rss: number; fds: number } }
  const growth = (after.rss - before.rss) / 2 ** 20
  t.log(`RSS ${(before.rss / 2 ** 20).toFixed(1)} MiB -> ${(after.rss / 2 ** 20).toFixed(1)} MiB (${growth.toFixed(1)} MiB); fds ${before.fds} -> ${after.fds}`)
  t.is(after.fds, before.fds)
  t.true(growth < 16, `RSS grew ${growth.toFixed(1)} MiB`)
})

test('100 000 ShareableList open/get/close cycles leave RSS and the V8 heap flat', async (t) => {
  if (process.platform !== 'linux') return t.pass('reads /proc/self')
  const { code, stderr, messages } = await runChild('list-churn.cjs', ['100000'], { execArgv: ['--expose-gc'] })
  t.is(code, 0, stderr)
  type Usage = { rss: number; heapTotal: number }
  const { before, after } = messages[0] as { before: Usage; after: Usage }
  const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1)
  t.log(`RSS ${mib(before.rss)} -> ${mib(after.rss)} MiB; V8 heap reserved ${mib(before.heapTotal)} -> ${mib(after.heapTotal)} MiB`)
  // A list held its SharedMemory by a strong reference until its own finalizer ran, so every
  // SharedMemory survived a collection: V8 grew its young generation to the maximum, +12 MiB.
  t.true(after.heapTotal - before.heapTotal < 2 ** 20, 'the V8 heap grew')
  t.true(after.rss - before.rss < 4 * 2 ** 20, `RSS grew ${mib(after.rss - before.rss)} MiB`)
})
