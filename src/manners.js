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

  const { ShmLock } = exports
  define(ShmLock, Symbol.dispose, function dispose() {
    this.close()
  })
  define(ShmLock, inspect, function inspectShmLock() {
    return `ShmLock(byteOffset=${this.byteOffset}, held=${this.held})`
  })

  const { ShareableList } = exports
  define(ShareableList, Symbol.dispose, function dispose() {
    this.close()
  })
  // Item by item, as Python iterates with __getitem__: each step sees the current value.
  define(ShareableList, Symbol.iterator, function* iterate() {
    const length = this.length
    for (let i = 0; i < length; i++) yield this.get(i)
  })
  define(ShareableList, inspect, function inspectShareableList(depth, options, inspectValue) {
    const name = this.shm.name
    if (this.shm.closed) return `ShareableList(<closed>, name='${name}')`
    const show = typeof inspectValue === 'function' ? inspectValue : (v) => JSON.stringify(v)
    return `ShareableList(${show(this.toArray(), options)}, name='${name}')`
  })

  const { SharedMemoryManager } = exports
  define(SharedMemoryManager, Symbol.dispose, function dispose() {
    this.shutdown()
  })
  define(SharedMemoryManager, inspect, function inspectManager(depth, options, inspectValue) {
    const show = typeof inspectValue === 'function' ? inspectValue : (v) => JSON.stringify(v)
    return `SharedMemoryManager(${this.closed ? 'shut down' : show(this.segments, options)})`
  })

  // For the native fast path (src/fast.rs): where to install get/set/toArray, and a function
  // that turns its arguments into an array in one call.
  return { listPrototype: ShareableList.prototype, collect: (...items) => items }
})
