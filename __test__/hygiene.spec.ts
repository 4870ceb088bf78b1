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
