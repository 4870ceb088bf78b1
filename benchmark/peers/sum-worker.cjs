// worker_threads peer: sums the Float64Array over a SharedArrayBuffer it is sent (no copy).
const { parentPort } = require('node:worker_threads')
parentPort.on('message', ({ sab, only }) => {
  const floats = new Float64Array(sab)
  let sum = 0
  if (only) sum = floats[floats.length - 1]
  else for (let i = 0; i < floats.length; i++) sum += floats[i]
  parentPort.postMessage(sum)
})
