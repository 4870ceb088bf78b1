// The IPC peer of the wake-up latency case: messages bounce between parent and child, each
// carrying the sender's process.hrtime.bigint() stamp; the receiver records the one-way delay.
const rounds = Number(process.argv[2])
const samples = []
process.on('message', (m) => {
  if (m.stamp !== undefined) samples.push(Number(process.hrtime.bigint() - BigInt(m.stamp)))
  if (samples.length >= rounds) {
    process.send({ samples })
    return
  }
  process.send({ stamp: String(process.hrtime.bigint()) })
})
