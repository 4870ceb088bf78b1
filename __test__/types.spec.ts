// The TypeScript view, checked by the compiler: types/list-types.ts holds lines that must
// compile under `--strict` and `@ts-expect-error` lines that must not (tsc fails on an unused
// one), and the TypeScript examples `npm run demo` runs are compiled with it.
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

import test from 'ava'

import { nativeOnly } from './helpers.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')

// What tsc checks is the same on every platform, and the native run (npm test) checks it; under
// qemu-user the compiler alone takes minutes and timed out when the machine was loaded.
nativeOnly('a platform-independent type-check, minutes of emulated tsc')('tsc --strict accepts typed lists and the examples, and rejects what it should', (t) => {
  const tsc = spawnSync(process.execPath, [TSC, '-p', join(ROOT, '__test__', 'types', 'tsconfig.json')], { encoding: 'utf8' })
  t.is(tsc.status, 0, tsc.stdout + tsc.stderr)
})

test('the type tests hold expected errors (a file that only compiles would prove nothing)', (t) => {
  const source = readFileSync(join(ROOT, '__test__', 'types', 'list-types.ts'), 'utf8')
  t.true((source.match(/@ts-expect-error/g) ?? []).length >= 6)
  t.regex(source, /sl\.set\(0, sl\.get\(0\) \* 10\)/)
})

test('the generated index.d.ts declares ShareableList generic', (t) => {
  const dts = readFileSync(join(ROOT, 'index.d.ts'), 'utf8')
  t.regex(dts, /export declare class ShareableList<T extends Item = Item> \{/)
  t.regex(dts, /static open<T extends Item = Item>\(name: string \| \{ name: string \}\): ShareableList<T>/)
})
