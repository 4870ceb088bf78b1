// SharedQueue put/get in JS, over the queue's mapping: no Node-API call per message in the
// common case (one cost ~1 µs under load: receiver check, type check, UTF-8 conversion,
// malloc/free). Installed after manners.js, over its put/get, which stay the fallback.
//
// The Rust core stays the authority. It validated the queue's header at open (capacity, slot
// size, max message) and hands the offsets over once (`_fastLayout`); the header's layout
// fields are never read here. Per call this path does only the non-blocking common case, with
// exactly the core's protocol (crate/src/queue.rs, "Protocol"):
// - put: the ended flag is clear, and the slot at `tail` holds `(tail, 0)`: one 64-bit CAS to
//   `(tail, me)` claims it, a CAS moves `tail` on (a hint), then the payload, length and tag
//   are written and one CAS publishes `(tail + 1, 0)`;
// - get: the slot at `head` holds `(head + 1, 0)`: one CAS to `(head + 1, me)` claims it, a CAS
//   moves `head` on, length and tag are copied once and checked, the payload copied once, and
//   one CAS frees the slot for the next lap, `(head + capacity, 0)`.
// After its commit (free) it wakes the consumers (producers) exactly as the core's `notify`
// does: only when that channel's sleepers count is not zero and its epoch is armed, through
// the native `_wake`.
// Anything else (full, empty, ended, a CAS lost to another process, a word that is not the
// expected one, a message too long for the fast encoding, a closed handle, a wrong receiver
// or argument, a negative timeout) goes to the native method, which waits, recovers dead
// owners, or throws the core's error. The only errors thrown here are the core's own for a
// slot it holds: a length above the maximum (the slot is freed and counted lost, as
// `free(.., lost = true)` does), an unknown tag or invalid UTF-8 (after the slot is freed, as
// the binding does), a slot word changed while held. __test__/queue-fast-path.spec.ts checks
// that both paths answer alike and leave the same bytes.
;(function makeQueueFastPath() {
  return function installQueueFastPath(internals) {
    const { exports, klass, decode, serialize, timeoutOf, putBytes, putString, take } = internals
    const proto = klass.prototype
    const { _fastLayout: layoutOf, _fastBuffer: bufferOf, _wake: wake } = proto
    const setSpin = Object.getOwnPropertyDescriptor(proto, 'spinMicros')?.set
    for (const key of ['_fastLayout', '_fastBuffer', '_wake']) delete proto[key]
    const native = { put: proto.put, get: proto.get }
    if (typeof process === 'object' && process?.env?.SHMKIT_TEST_HOOKS === '1') {
      Object.defineProperty(exports, '_queueNative', { value: native, enumerable: false })
    }
    // The slot words are little-endian u64 below; elsewhere (and with the switch off) only the
    // native path runs.
    if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) return
    if (typeof BigUint64Array !== 'function' || typeof Buffer !== 'function') return
    if (typeof process === 'object' && process?.env?.SHMKIT_QUEUE_FAST_PATH === '0') return

    const SERIALIZED = 0
    const STRING = 1
    const UINT8ARRAY = 2
    const BUFFER = 3
    const ENDED = 1
    // A Uint8Array message up to this long is made on V8's heap (zeroed, then overwritten);
    // a longer one in memory that is not zeroed first.
    const SMALL_BYTES = 64
    const DEFAULT_SPIN_MS = 0.02
    // What a fast try answers when the slot it needs is still taken (full / empty / a lost race).
    const BUSY = Symbol('shmkit.busy')
    const FAST = Symbol('shmkit.queueFastPath')
    // Length and tag need only stay between the claim and the publish, which are seq-cst
    // Atomics operations (full barriers); as in list_fast.js, plain typed-array accesses are
    // enough on x86 (TSO), Atomics ones elsewhere.
    const tso = typeof process === 'object' && (process.arch === 'x64' || process.arch === 'ia32')
    const load = tso ? (array, at) => array[at] : (array, at) => Atomics.load(array, at)
    const store = tso
      ? (array, at, value) => {
          array[at] = value
        }
      : (array, at, value) => {
          Atomics.store(array, at, value)
        }
    const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
    const writeUtf8 =
      typeof Buffer.prototype.utf8Write === 'function'
        ? (bytes, text, at, max) => bytes.utf8Write(text, at, max)
        : (bytes, text, at, max) => bytes.write(text, at, max, 'utf8')
    const readLatin1 =
      typeof Buffer.prototype.latin1Slice === 'function'
        ? (bytes, len) => bytes.latin1Slice(0, len)
        : (bytes, len) => bytes.toString('latin1', 0, len)
    // A private copy of a string message, grown on demand (to at most the queue's maximum).
    let scratch = Buffer.allocUnsafeSlow(256)

    const corrupt = (why) => Object.assign(new Error(`not a valid SharedQueue: ${why}`), { code: 'ERR_SHM_CORRUPT' })
    const changed = (pos, found) => corrupt(`the slot of position ${pos} changed while this process held it (0x${found.toString(16)})`)

    // Made on first use of a handle: views of its mapping and the layout the core validated.
    // null: native path only (not a queue, closed, external buffers refused).
    const fastOf = (queue) => {
      if (typeof queue !== 'object' || queue === null) return null
      const fast = queue[FAST]
      if (fast !== undefined) return fast !== null && fast.owner === queue ? fast : null
      let made = null
      try {
        made = makeFast(queue, layoutOf.call(queue), bufferOf.call(queue))
      } catch {
        return null // not a queue (the native method says so), or closed
      }
      try {
        Object.defineProperty(queue, FAST, { value: made })
      } catch {}
      return made
    }

    const makeFast = (queue, layout, buffer) => {
      if (!(buffer instanceof ArrayBuffer) || layout.length !== 13) return null
      const [header, slotBytes, capacity, max, tailAt, headAt, flagsAt, lostAt, dataSleepersAt, spaceSleepersAt, me, dataEpochAt, spaceEpochAt] =
        layout
      const words = [tailAt, headAt, flagsAt, lostAt, dataSleepersAt, spaceSleepersAt, dataEpochAt, spaceEpochAt]
      const fits =
        header % 8 === 0 &&
        slotBytes % 8 === 0 &&
        slotBytes >= 16 + max &&
        capacity >= 2 &&
        (capacity & (capacity - 1)) === 0 &&
        header + capacity * slotBytes <= buffer.byteLength &&
        words.every((at) => at % 4 === 0 && at + 4 <= header) &&
        me > 0
      if (!fits) return null
      return {
        owner: queue,
        u32: new Uint32Array(buffer, 0, (header + capacity * slotBytes) >> 2),
        big: new BigUint64Array(buffer, 0, (header + capacity * slotBytes) >> 3),
        bytes: Buffer.from(buffer, 0, header + capacity * slotBytes),
        header,
        slotBytes,
        mask: capacity - 1,
        capacity,
        max,
        tail: tailAt >> 2,
        head: headAt >> 2,
        flags: flagsAt >> 2,
        lost: lostAt >> 2,
        dataSleepers: dataSleepersAt >> 2,
        spaceSleepers: spaceSleepersAt >> 2,
        dataEpoch: dataEpochAt >> 2,
        spaceEpoch: spaceEpochAt >> 2,
        meHigh: BigInt(me) << 32n,
        // The handle's spinMicros (the core's default until set): how long a put on a full
        // queue or a get on an empty one keeps trying here before the native method spins and
        // sleeps (see `spinning`).
        spinMs: DEFAULT_SPIN_MS,
      }
    }

    const DATA = 1
    const SPACE = 0
    // After a commit (DATA) or a free (SPACE): the core's wake, called only as the core's
    // `notify` would make its system call, when the channel has sleepers and its epoch is
    // armed (bit 0; an earlier wake disarmed it, so its sleepers are already woken).
    const wakeIfAsleep = (queue, fast, channel) => {
      const u32 = fast.u32
      const sleepers = channel === DATA ? fast.dataSleepers : fast.spaceSleepers
      if (Atomics.load(u32, sleepers) === 0) return
      if ((Atomics.load(u32, channel === DATA ? fast.dataEpoch : fast.spaceEpoch) & 1) === 0) return
      wake.call(queue, channel)
    }

    // Claims the slot at `tail` when it is free for this lap: its position, or -1.
    // A slot's sequence (the low half of its word) is read before any CAS on it: a CAS takes
    // the cache line for writing even when it fails, so a producer waiting on a full queue (or
    // a consumer on an empty one) that tried CASes would keep pulling the line away from the
    // peer that is about to free (fill) it.
    const claimWrite = (fast) => {
      const pos = Atomics.load(fast.u32, fast.tail)
      const i = (fast.header + (pos & fast.mask) * fast.slotBytes) >> 3
      if (Atomics.load(fast.u32, i << 1) !== pos) return -1
      const free = BigInt(pos)
      if (Atomics.compareExchange(fast.big, i, free, free | fast.meHigh) !== free) return -1
      Atomics.compareExchange(fast.u32, fast.tail, pos, (pos + 1) >>> 0)
      return pos
    }

    // Writes length and tag, publishes the message, wakes sleeping consumers.
    const publish = (queue, fast, pos, at, len, tag) => {
      const u32 = fast.u32
      store(u32, (at + 8) >> 2, len)
      store(u32, (at + 12) >> 2, tag)
      const held = BigInt(pos) | fast.meHigh
      const found = Atomics.compareExchange(fast.big, at >> 3, held, BigInt((pos + 1) >>> 0))
      if (found !== held) throw changed(pos, found)
      wakeIfAsleep(queue, fast, DATA)
    }

    // true: put; false: the native method must do it; BUSY: the slot at `tail` is taken (the
    // queue is full, or another producer was first). Nothing was changed unless true.
    const putText = (queue, fast, text) => {
      if (fast.u32.length === 0 || (Atomics.load(fast.u32, fast.flags) & ENDED) !== 0) return false
      // At most 3 UTF-8 bytes per UTF-16 unit (a lone surrogate becomes U+FFFD, as the native
      // conversion does); only a long string is measured first.
      if (text.length * 3 > fast.max && Buffer.byteLength(text, 'utf8') > fast.max) return false
      const pos = claimWrite(fast)
      if (pos < 0) return BUSY
      const at = fast.header + (pos & fast.mask) * fast.slotBytes
      const len = text.length === 0 ? 0 : writeUtf8(fast.bytes, text, at + 16, fast.max)
      publish(queue, fast, pos, at, len, STRING)
      return true
    }

    const putBytesFast = (queue, fast, bytes, tag) => {
      if (fast.u32.length === 0 || (Atomics.load(fast.u32, fast.flags) & ENDED) !== 0) return false
      const len = bytes.length
      if (len > fast.max) return false
      const pos = claimWrite(fast)
      if (pos < 0) return BUSY
      const at = fast.header + (pos & fast.mask) * fast.slotBytes
      fast.bytes.set(bytes, at + 16)
      publish(queue, fast, pos, at, len, tag)
      return true
    }

    // Tries `attempt` until it answers (not BUSY) or `spinMs` has passed; BUSY then.
    // Without it, a put that finds the queue full (or a get that finds it empty) goes straight
    // to the native method, which spins there: between two busy processes, a queue that stays
    // full (or empty) then moves every message through Node-API, the slow path, and the faster
    // side falls to the pace of the slower one's native calls. Spinning here keeps both sides
    // on this path. The clock is read every few tries (each try is a few atomic loads).
    const spinning = (spinMs, attempt) => {
      if (!(spinMs > 0)) return BUSY
      const until = performance.now() + spinMs
      for (let tries = 1; ; tries++) {
        const got = attempt()
        if (got !== BUSY) return got
        if ((tries & 15) === 0 && performance.now() >= until) return BUSY
      }
    }

    const ABSENT = Symbol('shmkit.absent')
    // Frees a held slot with its message lost, as the core's `free(pos, held, true)`.
    const giveUp = (queue, fast, pos, held) => {
      const at = fast.header + (pos & fast.mask) * fast.slotBytes
      if (Atomics.compareExchange(fast.big, at >> 3, held, BigInt((pos + fast.capacity) >>> 0)) !== held) return
      Atomics.add(fast.u32, fast.lost, 1)
      Atomics.compareExchange(fast.u32, fast.head, pos, (pos + 1) >>> 0)
      wakeIfAsleep(queue, fast, SPACE)
      wakeIfAsleep(queue, fast, DATA)
    }

    const isAscii = (bytes, len) => {
      for (let i = 0; i < len; i++) if (bytes[i] > 0x7f) return false
      return true
    }

    // The value of the message at `head`; ABSENT when the native method must answer; BUSY when
    // the slot at `head` holds no message yet (the queue is empty, or another consumer was
    // first) and the queue has not ended.
    const getFast = (queue, fast) => {
      const u32 = fast.u32
      if (u32.length === 0) return ABSENT
      const pos = Atomics.load(u32, fast.head)
      const next = (pos + 1) >>> 0
      const at = fast.header + (pos & fast.mask) * fast.slotBytes
      if (Atomics.load(u32, at >> 2) !== next) {
        return (Atomics.load(u32, fast.flags) & ENDED) === 0 ? BUSY : ABSENT
      }
      const full = BigInt(next)
      const held = full | fast.meHigh
      if (Atomics.compareExchange(fast.big, at >> 3, full, held) !== full) {
        return (Atomics.load(u32, fast.flags) & ENDED) === 0 ? BUSY : ABSENT
      }
      Atomics.compareExchange(u32, fast.head, pos, next)
      // Copied once, then checked and used.
      const len = load(u32, (at + 8) >> 2)
      const tag = load(u32, (at + 12) >> 2) & 0xff
      if (len > fast.max) {
        giveUp(queue, fast, pos, held)
        throw corrupt(`the message at position ${pos} claims ${len} bytes; the most is ${fast.max}`)
      }
      // Bytes are copied straight into the value returned (a small Uint8Array on V8's heap, a
      // Buffer from Node's pool, as fs and net hand out); a string into this thread's scratch;
      // a serialized value into a buffer of its own, which deserialized typed arrays may keep
      // referring to.
      let got
      if (tag === STRING) {
        if (scratch.length < len) scratch = Buffer.allocUnsafeSlow(Math.min(fast.max, Math.max(len, scratch.length * 2)))
        fast.bytes.copy(scratch, 0, at + 16, at + 16 + len)
      } else if (tag === UINT8ARRAY) {
        got = len <= SMALL_BYTES ? new Uint8Array(len) : new Uint8Array(Buffer.allocUnsafeSlow(len).buffer, 0, len)
        fast.bytes.copy(got, 0, at + 16, at + 16 + len)
      } else if (tag === BUFFER) {
        got = Buffer.allocUnsafe(len)
        fast.bytes.copy(got, 0, at + 16, at + 16 + len)
      } else {
        got = Buffer.allocUnsafeSlow(len + 1)
        got[0] = tag
        fast.bytes.copy(got, 1, at + 16, at + 16 + len)
      }
      const found = Atomics.compareExchange(fast.big, at >> 3, held, BigInt((pos + fast.capacity) >>> 0))
      if (found !== held) throw changed(pos, found)
      wakeIfAsleep(queue, fast, SPACE)
      if (tag === STRING) {
        if (isAscii(scratch, len)) return readLatin1(scratch, len)
        try {
          return decoder.decode(scratch.subarray(0, len))
        } catch {
          throw corrupt('a string message is not valid UTF-8')
        }
      }
      if (tag === UINT8ARRAY || tag === BUFFER) return got
      if (tag > BUFFER) throw corrupt(`unknown message tag ${tag}`)
      return decode(got)
    }

    if (typeof setSpin === 'function') {
      Object.defineProperty(proto, 'spinMicros', {
        set(micros) {
          setSpin.call(this, micros) // validates, and throws for a closed handle or a wrong receiver
          const fast = fastOf(this)
          if (fast !== null) fast.spinMs = micros / 1000
        },
        configurable: true,
        enumerable: false,
      })
    }

    const usableTimeout = (timeout) => timeout === undefined || timeout >= 0
    // A blocked call spins here no longer than its timeout allows.
    const spinFor = (fast, timeout) => (timeout === undefined ? fast.spinMs : Math.min(fast.spinMs, timeout))

    const define = (key, value) =>
      Object.defineProperty(proto, key, { value, writable: true, configurable: true, enumerable: false })
    define('put', function putValue(value, options) {
      const timeout = timeoutOf(options)
      const fast = fastOf(this)
      if (fast === null || !usableTimeout(timeout)) return native.put.call(this, value, options)
      if (typeof value === 'string') {
        let done = putText(this, fast, value)
        if (done === BUSY) done = spinning(spinFor(fast, timeout), () => putText(this, fast, value))
        if (done !== true) putString.call(this, value, timeout)
        return
      }
      const tag = value instanceof Uint8Array ? (Buffer.isBuffer(value) ? BUFFER : UINT8ARRAY) : SERIALIZED
      const bytes = tag === SERIALIZED ? serialize(value) : value
      let done = putBytesFast(this, fast, bytes, tag)
      if (done === BUSY) done = spinning(spinFor(fast, timeout), () => putBytesFast(this, fast, bytes, tag))
      if (done !== true) putBytes.call(this, bytes, tag, timeout)
    })
    define('get', function getValue(options) {
      const timeout = timeoutOf(options)
      const fast = fastOf(this)
      if (fast !== null && usableTimeout(timeout)) {
        let value = getFast(this, fast)
        if (value === BUSY) value = spinning(spinFor(fast, timeout), () => getFast(this, fast))
        if (value !== ABSENT && value !== BUSY) return value
        return decode(take.call(this, timeout))
      }
      return native.get.call(this, options)
    })
  }
})()
