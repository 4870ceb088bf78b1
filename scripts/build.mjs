// `npm run build`: `napi build` with the arguments given (`npm run build -- --target …` passes
// them through), then one finishing step on the generated index.d.ts.
//
// ShareableList is generic in TypeScript (`ShareableList<T extends Item = Item>`, the item
// type inferred from the constructor's iterable), but napi-rs cannot declare a generic class:
// `#[napi]` on a struct takes neither type parameters nor `skip_typescript`. Its members are
// written generically in Rust (`ts_args_type`, `ts_generic_types`) and in dts-header.d.ts;
// this step adds the type parameter list to the generated class line, so that it merges with
// the header's `interface ShareableList<T extends Item = Item>`. It fails loudly if napi-rs
// ever changes that line.
import { spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const cli = fileURLToPath(new URL('../node_modules/@napi-rs/cli/dist/cli.js', import.meta.url))
const args = process.argv.slice(2)

const { status, signal } = spawnSync(process.execPath, [cli, 'build', ...args], { cwd: root, stdio: 'inherit' })
if (status !== 0) process.exit(status ?? (signal ? 1 : 1))

// `--dts <file>` or `--no-dts` change where (or whether) the declarations are written.
if (args.includes('--no-dts')) process.exit(0)
const dtsFlag = args.indexOf('--dts')
const dts = fileURLToPath(new URL(dtsFlag >= 0 ? args[dtsFlag + 1] : 'index.d.ts', new URL('..', import.meta.url)))

const GENERIC = 'export declare class ShareableList<T extends Item = Item> {'
const text = readFileSync(dts, 'utf8')
if (!text.includes(GENERIC)) {
  const plain = 'export declare class ShareableList {'
  if (!text.includes(plain)) {
    console.error(`scripts/build.mjs: ${dts} has no line "${plain}" to make generic; napi-rs changed its output`)
    process.exit(1)
  }
  writeFileSync(dts, text.replace(plain, GENERIC))
}
