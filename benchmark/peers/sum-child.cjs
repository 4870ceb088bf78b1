// The child side of "64 MiB of Float64 to a child": receives the data (by segment name, or
// through IPC) and sends back its checksum.
const mode = process.argv[2]
// A message { only: data } asks for the hand-over alone: the child reads one value back.
process.on('message', (msg) => {
  const only = msg && typeof msg === 'object' && 'only' in msg
  if (only) msg = msg.only
  let floats
  let shm
  if (mode === 'shmkit') {
    const { SharedMemory } = require('../../index.js')
    shm = SharedMemory.open(msg)
    floats = new Float64Array(shm.buffer)
  } else {
    floats = msg
  }
  let sum = 0
  if (only) sum = floats[floats.length - 1]
  else for (let i = 0; i < floats.length; i++) sum += floats[i]
  if (shm) shm.close()
  process.send(sum)
})
process.send('ready')
