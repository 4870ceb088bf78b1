// The benchmark's chart: how many times faster shmkit is than each peer, per case, as an SVG
// rendered by Vega-Lite (log scale; 1× means a tie).
import * as vega from 'vega'
import * as vl from 'vega-lite'

export async function renderChart(r) {
  const bars = []
  const add = (group, label, peer, ours) => {
    if (peer && ours) bars.push({ group, case: label, times: peer / ours })
  }
  add('vs CPython', 'create 4 KiB', r.python?.create, r.shmkit.create)
  add('vs CPython', 'open 4 KiB', r.python?.open, r.shmkit.open)
  add('vs CPython', 'list get (int)', r.pythonList?.getInt, r.shmkitList.getInt)
  add('vs CPython', 'list get (short str)', r.pythonList?.getStr, r.shmkitList.getStr)
  add('vs CPython', 'list set (int)', r.pythonList?.setInt, r.shmkitList.setInt)
  add('vs CPython', 'list set (short str)', r.pythonList?.setStr, r.shmkitList.setStr)
  add('vs CPython', 'list toArray (600)', r.pythonList?.toArray600, r.shmkitList.toArray600)
  add('vs CPython', 'list for…of (600)', r.pythonList?.forOf600, r.shmkitList.forOf600)
  add('vs CPython', 'list count (600)', r.pythonList?.count600, r.shmkitList.count600)
  add('vs CPython', '64 MiB to a child', r.transfer.cpythonMs, r.transfer.shmkitMs)
  add('vs IPC', '64 MiB to a child', r.transfer.ipcMs, r.transfer.shmkitMs)
  add('vs IPC', '64 MiB hand-over only', r.transfer.ipcHandoverMs, r.transfer.shmkitHandoverMs)
  add('vs worker + SharedArrayBuffer', '64 MiB to a worker / child', r.transfer.workerSabMs, r.transfer.shmkitMs)
  add('vs shm-typed-array', 'create 4 KiB', r.shmTypedArray?.create, r.shmkit.create)
  add('vs shm-typed-array', 'open 4 KiB', r.shmTypedArray?.open, r.shmkit.open)
  add('vs C (floor)', 'create 4 KiB', r.c.create, r.shmkit.create)
  add('vs C (floor)', 'open 4 KiB', r.c.open, r.shmkit.open)
  add('vs C (floor)', 'write 256 MiB', r.bandwidth.shmkitGBs, r.bandwidth.cMemsetGBs)
  const spec = vl.compile({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: 'shmkit: times faster than the peer (log scale; 1× is a tie)',
      subtitle: `npm run bench — Node ${r.node}, CPython ${r.cpython ?? '—'}, ${r.date.slice(0, 10)}`,
    },
    width: 460,
    data: { values: bars.map((b) => ({ ...b, row: `${b.group}: ${b.case}`, label: `${b.times.toFixed(b.times < 10 ? 2 : 0)}×` })) },
    encoding: {
      y: { field: 'row', type: 'nominal', title: null, sort: null, axis: { labelLimit: 400 } },
      x: { field: 'times', type: 'quantitative', scale: { type: 'log', domain: [0.1, 1000] }, title: 'times faster' },
    },
    layer: [
      { mark: 'bar', encoding: { color: { field: 'group', type: 'nominal', title: null } } },
      { mark: { type: 'text', align: 'left', dx: 4 }, encoding: { text: { field: 'label' } } },
      { mark: { type: 'rule', strokeDash: [4, 4] }, data: { values: [{ one: 1 }] }, encoding: { x: { datum: 1 }, y: null } },
    ],
  }).spec
  const view = new vega.View(vega.parse(spec), { renderer: 'none' })
  return view.toSVG()
}

// `node benchmark/chart.mjs [results.json]` redraws the chart from a run's results.
if (process.argv[1] && import.meta.url === (await import('node:url')).pathToFileURL(process.argv[1]).href) {
  const { readFileSync, writeFileSync } = await import('node:fs')
  const input = process.argv[2] ?? new URL('./results.json', import.meta.url).pathname
  writeFileSync(input.replace(/\.json$/, '.svg'), await renderChart(JSON.parse(readFileSync(input, 'utf8'))))
}
