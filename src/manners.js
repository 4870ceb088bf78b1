// JS manners napi-rs cannot express in Rust: Symbol.dispose, util.inspect output, toString.
// Installed on the classes' prototypes once per environment (main thread and each worker).
;(function installJsManners(exports) {
  if (typeof Symbol.dispose !== 'symbol') {
    Object.defineProperty(Symbol, 'dispose', { value: Symbol.for('nodejs.dispose') })
  }
  const inspect = Symbol.for('nodejs.util.inspect.custom')
  const define = (klass, key, value) =>
    Object.defineProperty(klass.prototype, key, { value, writable: true, configurable: true, enumerable: false })

  for (const name of ['QueueReservation', 'QueueBorrow']) guardReceivers(exports[name])
  for (const name of ['SharedMemory', 'ShareableList', 'ShmLock', 'SharedMemoryManager', 'SharedQueue']) {
    guardReceivers(exports[name])
    exports[name] = requireNew(exports[name])
  }

  const { SharedMemory } = exports
  define(SharedMemory, Symbol.dispose, function dispose() {
    this.close()
  })
  define(SharedMemory, inspect, function inspectSharedMemory() {
    if (this.closed) return `SharedMemory(<closed>, name='${this.name}', size=${this.size})`
    return `SharedMemory(name='${this.name}', size=${this.size})`
  })

  const { ShmLock } = exports
  installLockFastPath(ShmLock)
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
  // Array's idiom for Python's `sl[-1]`: like Array.prototype.at, undefined outside the list.
  define(ShareableList, 'at', function at(index) {
    if (!(this instanceof ShareableList)) throw wrongReceiver(ShareableList, 'at')
    if (typeof index !== 'number') {
      const err = new TypeError(`The "index" argument must be of type number. Received type ${typeof index}`)
      err.code = 'ERR_INVALID_ARG_TYPE'
      throw err
    }
    const length = this.length
    const relative = Number.isNaN(index) ? 0 : Math.trunc(index)
    const k = relative < 0 ? length + relative : relative
    return k >= 0 && k < length ? this.get(k) : undefined
  })
  // get/set/toArray/count/index and iteration: src/list_fast.js.
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

  const { SharedQueue } = exports
  const queueInternals = installQueueValues(SharedQueue)
  define(SharedQueue, Symbol.dispose, function dispose() {
    this.close()
  })
  define(SharedQueue, inspect, function inspectSharedQueue() {
    if (this.closed) return `SharedQueue(<closed>, name='${this.name}')`
    return `SharedQueue(name='${this.name}', qsize=${this.qsize()}, capacity=${this.capacity})`
  })

  // Values become tagged bytes here and come back the same kind: strings as UTF-8, Uint8Array
  // and Buffer as their bytes, anything else through v8.serialize (what child_process's
  // 'advanced' serialization carries). The native side only moves bytes (src/queue.rs).
  function installQueueValues(klass) {
    const v8 = process.getBuiltinModule('v8')
    const SERIALIZED = 0
    const UINT8ARRAY = 2
    const BUFFER = 3
    const proto = klass.prototype
    const { _putBytes: putBytes, _putString: putString, _get: take, _readable: readable, _writable: writable, _reserve: reserve, _borrow: borrow } = proto
    for (const key of ['_putBytes', '_putString', '_get', '_readable', '_writable', '_reserve', '_borrow']) delete proto[key]
    // Borrowed slots: `using` finishes them (a reservation not committed is aborted).
    for (const lent of [exports.QueueReservation, exports.QueueBorrow]) {
      const { _dispose: dispose } = lent.prototype
      delete lent.prototype._dispose
      define(lent, Symbol.dispose, function disposeSlot() {
        dispose.call(this)
      })
      define(lent, inspect, function inspectSlot() {
        return `${lent.name}(${this.open ? `${this.bytes.length} bytes` : 'finished'})`
      })
    }

    const typeError = (message) => Object.assign(new TypeError(message), { code: 'ERR_INVALID_ARG_TYPE' })
    const timeoutOf = (options) => {
      if (options === undefined || options === null) return undefined
      if (typeof options !== 'object') throw typeError(`The "options" argument must be an object. Received type ${typeof options}`)
      const { timeout } = options
      if (timeout === undefined || timeout === null) return undefined
      if (typeof timeout !== 'number') throw typeError(`The "options.timeout" property must be of type number. Received type ${typeof timeout}`)
      return timeout
    }
    const serialize = (value) => {
      try {
        return v8.serialize(value)
      } catch (cause) {
        throw Object.assign(new TypeError(`a SharedQueue carries structured-cloneable values: ${cause.message}`), { code: 'ERR_SHM_UNSUPPORTED_TYPE', cause })
      }
    }
    const put = (queue, value, timeout) => {
      if (typeof value === 'string') return putString.call(queue, value, timeout)
      if (value instanceof Uint8Array) return putBytes.call(queue, value, Buffer.isBuffer(value) ? BUFFER : UINT8ARRAY, timeout)
      return putBytes.call(queue, serialize(value), SERIALIZED, timeout)
    }
    const decode = (got) => {
      if (typeof got === 'string') return got
      const tag = got[0]
      if (tag === BUFFER) return got.subarray(1)
      if (tag === UINT8ARRAY) return new Uint8Array(got.buffer, got.byteOffset + 1, got.length - 1)
      try {
        return v8.deserialize(got.subarray(1))
      } catch (cause) {
        throw Object.assign(new Error(`not a valid SharedQueue: a message does not deserialize (${cause.message})`), { code: 'ERR_SHM_CORRUPT', cause })
      }
    }
    // Async calls try the non-blocking call first; only a full or empty queue waits, on a
    // native thread that claims nothing, then tries again.
    // A value that is already there settles the promise at once, on the microtask queue; a
    // `for await` over a queue that never runs dry would then starve timers and I/O. Every
    // so many immediate answers, let the event loop turn once.
    let immediate = 0
    const retry = async (queue, timeout, attempt, blocked, wait) => {
      const deadline = timeout === undefined || timeout === Infinity ? Infinity : performance.now() + timeout
      if (++immediate >= 64) {
        immediate = 0
        await new Promise(setImmediate)
      }
      for (;;) {
        try {
          return attempt()
        } catch (err) {
          immediate = 0
          if (err.code !== blocked) throw err
          const left = deadline - performance.now()
          if (left <= 0) throw err
          await wait.call(queue, left === Infinity ? undefined : left)
        }
      }
    }

    define(klass, 'put', function putValue(value, options) {
      put(this, value, timeoutOf(options))
    })
    define(klass, 'get', function getValue(options) {
      return decode(take.call(this, timeoutOf(options)))
    })
    define(klass, 'reserve', function reserveSlot(size, options) {
      return reserve.call(this, size, timeoutOf(options))
    })
    define(klass, 'borrow', function borrowSlot(options) {
      return borrow.call(this, timeoutOf(options))
    })
    define(klass, 'putAsync', async function putAsync(value, options) {
      const timeout = timeoutOf(options)
      if (timeout !== undefined && (Number.isNaN(timeout) || timeout < 0)) put(this, value, timeout) // throws the range error
      await retry(this, timeout, () => put(this, value, 0), 'ERR_SHM_QUEUE_FULL', writable)
    })
    define(klass, 'getAsync', async function getAsync(options) {
      const timeout = timeoutOf(options)
      if (timeout !== undefined && (Number.isNaN(timeout) || timeout < 0)) take.call(this, timeout) // throws the range error
      return decode(await retry(this, timeout, () => take.call(this, 0), 'ERR_SHM_QUEUE_EMPTY', readable))
    })
    define(klass, Symbol.asyncIterator, async function* iterate() {
      for (;;) {
        let value
        try {
          value = await this.getAsync()
        } catch (err) {
          if (err.code === 'ERR_SHM_QUEUE_ENDED') return
          throw err
        }
        yield value
      }
    })
    // For src/queue_fast.js, which installs its put/get over these (they stay its fallback).
    return { exports, klass, decode, serialize, timeoutOf, putBytes, putString, take }
  }

  // Uncontended lock/unlock with Atomics, no native call (~10× cheaper); the protocol is
  // shmkit_core::lock::ShmLock::handle_state's. Anything else goes to the native methods.
  function installLockFastPath(klass) {
    const IDLE = 0
    const ACQUIRING = 1
    const HOLDING = 2
    const FAST = Symbol('shmkit.lockFastPath')
    const { lock, tryLock, unlock, _handleState: handleState, _pid: pidOf, _wakeWaiter: wakeWaiter } = klass.prototype
    // Native helpers of this fast path only: off the prototype, so no user sees or calls them.
    for (const key of ['_handleState', '_pid', '_wakeWaiter']) delete klass.prototype[key]
    // Made on first use: the handle's state word, a view of the lock word, the pid to write.
    // null when unavailable (external buffers refused, SharedMemory closed): native path only.
    const fastOf = (handle) => {
      let fast = handle[FAST]
      if (fast !== undefined) return fast
      // Another receiver gets no property added; the native method then refuses it.
      if (!(handle instanceof klass)) return null
      fast = null
      try {
        const shm = handle.shm
        const state = shm && handleState.call(handle)
        if (state) fast = { state, word: new Int32Array(shm.buffer, handle.byteOffset, 1), pid: pidOf.call(handle) }
      } catch {}
      Object.defineProperty(handle, FAST, { value: fast })
      return fast
    }
    // Takes the free lock without a native call; false sends the caller to the native path.
    const takeFree = (fast) => {
      if (fast === null || fast.word.length === 0) return false // closed SharedMemory
      if (Atomics.compareExchange(fast.state, 0, IDLE, ACQUIRING) !== IDLE) return false
      if (Atomics.compareExchange(fast.word, 0, 0, fast.pid) === 0) {
        Atomics.store(fast.state, 0, HOLDING)
        return true
      }
      Atomics.store(fast.state, 0, IDLE)
      return false
    }
    const validTimeout = (ms) => ms == null || (typeof ms === 'number' && ms >= 0)
    define(klass, 'lock', function lockShmLock(timeoutMs) {
      if (validTimeout(timeoutMs) && takeFree(fastOf(this))) return 'acquired'
      return lock.call(this, timeoutMs)
    })
    define(klass, 'tryLock', function tryLockShmLock() {
      if (takeFree(fastOf(this))) return 'acquired'
      return tryLock.call(this)
    })
    define(klass, 'unlock', function unlockShmLock() {
      const fast = fastOf(this)
      if (fast === null || fast.word.length === 0) return unlock.call(this)
      if (Atomics.compareExchange(fast.state, 0, HOLDING, IDLE) !== HOLDING) return unlock.call(this)
      // Bit 31 (the sign bit here) says a waiter may sleep: wake one.
      if (Atomics.exchange(fast.word, 0, 0) < 0) wakeWaiter.call(this)
    })
  }

  function wrongReceiver(klass, key) {
    const wrong = new TypeError(`${klass.name}.prototype.${key} was called on an object that is not a ${klass.name}`)
    wrong.code = 'ERR_INVALID_ARG_TYPE'
    return wrong
  }

  // A method called on another object: V8 says "Illegal invocation" (methods) and napi-rs
  // "InvalidArg" (accessors), both without a code. Give them Node's ERR_INVALID_ARG_TYPE.
  function guardReceivers(klass) {
    const receiverError = (err, key) => {
      if (!(err instanceof Error) || !(err.message === 'Illegal invocation' || err.code === 'InvalidArg')) return err
      return wrongReceiver(klass, key)
    }
    for (const [key, descriptor] of Object.entries(Object.getOwnPropertyDescriptors(klass.prototype))) {
      if (key === 'constructor') continue
      const { value: method, get, set } = descriptor
      if (typeof method === 'function') {
        descriptor.value = {
          [key](...args) {
            try {
              return Reflect.apply(method, this, args)
            } catch (err) {
              throw receiverError(err, key)
            }
          },
        }[key]
      } else if (get || set) {
        if (get) {
          descriptor.get = function () {
            try {
              return Reflect.apply(get, this, [])
            } catch (err) {
              throw receiverError(err, key)
            }
          }
        }
        // A setter with no getter too (SharedQueue's spinMicros).
        if (set) {
          descriptor.set = function (value) {
            try {
              Reflect.apply(set, this, [value])
            } catch (err) {
              throw receiverError(err, key)
            }
          }
        }
      } else {
        continue
      }
      Object.defineProperty(klass.prototype, key, descriptor)
    }
  }

  // Python constructs by calling the class; in JS, `SharedMemory({...})` without `new` would
  // run the native constructor on the global object. Refuse it before anything happens.
  function requireNew(klass) {
    const guarded = new Proxy(klass, {
      apply() {
        const err = new TypeError(`Class constructor ${klass.name} cannot be invoked without 'new'`)
        err.code = 'ERR_CONSTRUCT_CALL_REQUIRED'
        throw err
      },
      // `new` through the Proxy must reach V8 with the class itself as new.target: with the
      // Proxy there, V8 derives a fresh hidden class for every instance (slow, and it kept
      // ~1 KB per ShareableList alive in the hygiene churn).
      construct(target, args, newTarget) {
        return Reflect.construct(target, args, newTarget === guarded ? target : newTarget)
      },
    })
    Object.defineProperty(klass.prototype, 'constructor', { value: guarded, writable: true, configurable: true, enumerable: false })
    return guarded
  }

  // For the native fast path (src/fast.rs): where to install get/set/toArray, and a function
  // that turns its arguments into an array in one call.
  // And for src/queue_fast.js: the queue's native helpers and value encoding.
  return { listPrototype: ShareableList.prototype, collect: (...items) => items, queue: queueInternals }
})
