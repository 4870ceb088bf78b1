// A/B of src/list_fast.js variants in one process, without rebuilding the addon (which embeds
// the file): each variant is installed over its own subclass of ShareableList, whose "native"
// methods are the built addon's, and the cases alternate between variants round by round;
// medians per case. Machines drift and this one may be loaded: compare within one run only.
//
//   git show main:src/list_fast.js > /tmp/old.js
//   node benchmark/list-fast-ab.cjs /tmp/old.js src/list_fast.js   (ROUNDS=15, ONLY=getInt,toArray600)
process.env.SHMKIT_TEST_HOOKS = '1'
const { readFileSync } = require('node:fs')
const { isDeepStrictEqual } = require('node:util')
const vm = require('node:vm')
const addon = require('../index.js')
const { ShareableList } = addon
const native = addon._listNative

// The layout the core hands over (`_layout`), read here from the header of a list we made.
function layout() {
  const buf = this.shm.buf
  const n = Number(buf.readBigInt64LE(0))
  const offsets = Array.from({ length: n + 1 }, (_, k) => Number(buf.readBigInt64LE(8 + 8 * k)))
  const dataAt = 8 * (n + 2)
  const formatsAt = dataAt + offsets[n]
  return [dataAt, formatsAt, formatsAt + 8 * n, ...offsets]
}
function variant(file) {
  const install = vm.runInThisContext(readFileSync(file, 'utf8'), { filename: file })
  const proto = class extends ShareableList {}.prototype
  const own = { _layout: layout, _weakenShm() {}, close: ShareableList.prototype.close, ...native }
  for (const [k, v] of Object.entries(own)) Object.defineProperty(proto, k, { value: v, writable: true, configurable: true })
  install({ ShareableList: { prototype: proto } })
  return (items) => Object.setPrototypeOf(new ShareableList(items, { track: false }), proto)
}
// As benchmark/run.mjs and its CPython peer build it.
const kinds = [(i) => i, (i) => i + 0.5, (i) => i % 2 === 0, () => null, (i) => `item${i}`, (i) => Buffer.from(`raw${i}`)]
const mixed = (n) => Array.from({ length: n }, (_, i) => kinds[i % kinds.length](i))

const files = process.argv.slice(2)
const lists = files.map((file) => {
  const make = variant(file)
  return { sl: make([12345, 'short']), big: make(mixed(600)) }
})
for (const { big } of lists) {
  if (!isDeepStrictEqual(big.toArray(), native.toArray.call(big))) throw new Error('toArray differs from the native path')
}
let sink = 0
const cases = {
  getInt: ({ sl }) => { for (let k = 0; k < 1000; k++) sink += sl.get(0); return 1000 },
  getStr: ({ sl }) => { for (let k = 0; k < 1000; k++) sink += sl.get(1).length; return 1000 },
  setInt: ({ sl }) => { for (let k = 0; k < 1000; k++) sl.set(0, 54321); return 1000 },
  setStr: ({ sl }) => { for (let k = 0; k < 1000; k++) sl.set(1, 'other'); return 1000 },
  toArray600: ({ big }) => { sink += big.toArray().length; return 1 },
  forOf600: ({ big }) => { for (const x of big) sink += x === null ? 1 : 0; return 1 },
  count600: ({ big }) => { sink += big.count(599); return 1 },
  index600: ({ big }) => { sink += big.index('item598'); return 1 },
}
const only = process.env.ONLY ? process.env.ONLY.split(',') : Object.keys(cases)
const rounds = Number(process.env.ROUNDS) || 15
const samples = Object.fromEntries(only.map((name) => [name, files.map(() => [])]))
for (let r = 0; r < rounds; r++) {
  for (const name of only) {
    const order = files.map((_, i) => i)
    if (r % 2) order.reverse()
    for (const v of order) {
      // One sample: the case repeated for 5 ms.
      let ops = 0
      const t0 = process.hrtime.bigint()
      let t
      do {
        ops += cases[name](lists[v])
        t = process.hrtime.bigint()
      } while (t - t0 < 5_000_000n)
      samples[name][v].push(Number(t - t0) / ops)
    }
  }
}
const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1]
const rows = {}
for (const name of only) {
  const m = samples[name].map(median)
  rows[name] = Object.fromEntries(m.map((ns, i) => [`${i}: ns`, ns.toFixed(1)]))
  if (m.length > 1) rows[name]['first / last'] = (m[0] / m[m.length - 1]).toFixed(2)
}
console.log(files.map((f, i) => `${i}: ${f}`).join('\n'))
console.table(rows)
for (const { sl, big } of lists) {
  for (const list of [sl, big]) {
    list.close()
    list.shm.unlink()
  }
}
if (sink === -1) console.log(sink)
