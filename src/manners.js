// JS manners napi-rs cannot express in Rust: Symbol.dispose, util.inspect output, toString.
// Installed on the classes' prototypes once per environment (main thread and each worker).
;(function installJsManners(exports) {
  if (typeof Symbol.dispose !== 'symbol') {
    Object.defineProperty(Symbol, 'dispose', { value: Symbol.for('nodejs.dispose') })
  }
  const inspect = Symbol.for('nodejs.util.inspect.custom')
  const define = (klass, key, value) =>
    Object.defineProperty(klass.prototype, key, { value, writable: true, configurable: true, enumerable: false })

  const { SharedMemory } = exports
  define(SharedMemory, Symbol.dispose, function dispose() {
    this.close()
  })
  define(SharedMemory, inspect, function inspectSharedMemory() {
    return `SharedMemory(name='${this.name}', size=${this.size})`
  })
})
