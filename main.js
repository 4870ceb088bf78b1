// The package's entry point: the loader napi-rs generates (index.js), with two changes it
// cannot be told to make.
//
// 1. When no binary loads, its error leads with an npm bug and ends in a chain of causes whose
//    first is a WebAssembly fallback this package does not ship; the package actually missing
//    comes several causes down. Say first which package is missing and how to get it.
// 2. It stamps `__napiBindingTarget` ('native') on the exports as an enumerable property, so
//    it shows in `console.log(require('shmkit'))`. Keep it, but not enumerable.
'use strict'

try {
  module.exports = require('./index.js')
} catch (err) {
  throw explainMissingBinding(err)
}

try {
  Object.defineProperty(module.exports, '__napiBindingTarget', { enumerable: false })
} catch {}

function explainMissingBinding(err) {
  if (!(err instanceof Error) || !/^Cannot find native binding/.test(err.message)) return err
  let wanted = null
  for (let cause = err.cause; cause && !wanted; cause = cause.cause) {
    const match = /Cannot find module '(shmkit-[a-z0-9-]+)'/.exec(String(cause.message))
    if (match && !match[1].includes('wasm32-wasi')) wanted = match[1]
  }
  if (!wanted) return err
  const explained = new Error(
    `shmkit has no native binary for this platform (${process.platform}-${process.arch}): ` +
      `the package ${wanted} is not installed. npm installs it with shmkit as an optional ` +
      `dependency; it is left out by --omit=optional (or --no-optional), by a lockfile made on ` +
      `another platform, or when shmkit was installed from a tarball without it. From a ` +
      `checkout, run \`npm run pack:local\` and install both tarballs it prints.`,
  )
  explained.code = 'ERR_SHM_NO_BINDING'
  explained.cause = err
  return explained
}
