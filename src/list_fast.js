// ShareableList get/set/toArray/count/index and iteration in JS, over the segment's mapping:
// no native call, so no receiver check (~100 ns) per item. Installed after src/fast.rs.
//
// The Rust core stays the authority. The layout (count, slot offsets, where formats and codes
// start) is the one shmkit_core::list::Layout validated at attach, handed over once by
// `_layout`; the segment's header is never read here. Per access this path reads only what
// it recognises exactly — the int/float/bool/None formats, and `<slot>s` for str/bytes —
// through the core's reader protocol (code, copy, code, copy, code; see `load` below for the
// ordering), and never writes a byte while reading. Anything else (a busy item, a
// format it does not know, a copy that keeps changing, invalid UTF-8, a closed segment, a
// wrong receiver or argument) is handed to the native method, which either answers or throws
// the core's error (ERR_SHM_CORRUPT, ERR_SHM_CLOSED, ...). So both paths answer alike by
// construction; __test__/list-fast-path.spec.ts checks it over random lists, writes and
// corruptions.
//
// Writers take the item's lock as the core does: one compare-and-swap of the code byte to
// BUSY (0xff), then data, format, and the final code with an Atomics store. When the item is
// held the native writer takes over (it backs off and takes over from dead holders).
;(function makeListFastPath() {
  return function installListFastPath(exports) {
    const klass = exports.ShareableList
    const proto = klass.prototype
    const layoutOf = proto._layout
    const weakenShm = proto._weakenShm
    delete proto._layout
    delete proto._weakenShm
    const close = proto.close
    // A closed list keeps its SharedMemory (`list.shm` still answers) as a property rather than
    // through a Node-API strong reference, which kept it alive one collection longer than the
    // list: with 100 000 lists opened and closed, enough survivors to grow V8's young
    // generation to its maximum (+12 MiB RSS). Now both die in the same scavenge.
    const SHM = Symbol('shmkit.listShm')
    const closing = {
      close() {
        if (typeof this === 'object' && this !== null && !Object.hasOwn(this, SHM)) {
          try {
            const shm = this.shm
            Object.defineProperty(this, SHM, { value: shm })
            weakenShm.call(this)
          } catch {} // not a list (the native close says so), or frozen: the reference stays strong
        }
        return close.call(this)
      },
    }
    Object.defineProperty(proto, 'close', { value: closing.close, writable: true, configurable: true, enumerable: false })
    // The layout's words are little-endian below; elsewhere only the native path runs.
    if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) return
    const native = { get: proto.get, set: proto.set, toArray: proto.toArray, count: proto.count, index: proto.index }

    const FAST = Symbol('shmkit.listFastPath')
    const BUSY = 0xff
    const CODE_PLAIN = 0
    const CODE_STR = 1
    const CODE_BYTES = 2
    const CODE_NONE = 3
    // Must match shmkit_core::list::MAX_SLOT_LEN: a larger slot's format cannot say its size.
    const MAX_SLOT_LEN = 9_999_992
    const TWO_32 = 4294967296
    // Kinds of item; 0: not recognised here.
    const INT = 1
    const FLOAT = 2
    const BOOL = 3
    const NONE = 4
    const STR = 5
    const BYTES = 6
    // The 8-byte formats as two little-endian int32 words.
    const FORMAT_INT_LO = 0x71 // "q"
    const FORMAT_FLOAT_LO = 0x64 // "d"
    const FORMAT_PAD = 0x78787878 // "xxxx"
    const FORMAT_BOOL_HI = 0x3f787878 // "xxx?"
    const FORMAT_NONE_HI = 0x783f7878 // "xx?x"
    // Copies of a read are compared before use; a few tries, then the native reader waits.
    const TRIES = 4
    // Returned by read() when the native path must answer.
    const ABSENT = Symbol('shmkit.absent')
    // The code byte is always read and written with Atomics: it is the item's lock and the
    // reader's sequence. Formats and data need only stay ordered between those accesses, as
    // the core's Acquire/Release fences keep them. On x86 (TSO) plain typed-array loads and
    // stores already are: the CPU never reorders loads with loads or stores with stores, and
    // V8 never moves a typed-array access across an Atomics operation. Elsewhere (Arm) every
    // access is an Atomics one, seq-cst, so ordered. (Node 20 calls a builtin for each
    // Atomics.load, ~10 ns; a plain load is ~1 ns.)
    const tso = typeof process === 'object' && (process.arch === 'x64' || process.arch === 'ia32')
    const load = tso ? (array, at) => array[at] : (array, at) => Atomics.load(array, at)
    const store = tso
      ? (array, at, value) => {
          array[at] = value
        }
      : (array, at, value) => {
          Atomics.store(array, at, value)
        }

    const word = new Int32Array(2)
    const wordFloat = new Float64Array(word.buffer)
    // Private copies of str/bytes items (two copies side by side), grown on demand.
    let scratch = new Int32Array(64)
    let scratchBytes = new Uint8Array(scratch.buffer)
    const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
    const encoder = new TextEncoder()
    const wellFormed = typeof String.prototype.isWellFormed === 'function' ? (s) => s.isWellFormed() : () => false

    const growScratch = (words) => {
      if (scratch.length >= words) return
      scratch = new Int32Array(Math.max(words, scratch.length * 2))
      scratchBytes = new Uint8Array(scratch.buffer)
    }

    // Made on first use of a list: views of its mapping and the validated layout. null: native
    // path only (not a ShareableList, closed, no ArrayBuffer over the segment).
    const fastOf = (list) => {
      if (typeof list !== 'object' || list === null) return null
      const fast = list[FAST]
      if (fast !== undefined) return fast.owner === list ? fast : null
      let made = null
      try {
        const positions = layoutOf.call(list)
        const buffer = list.shm.buffer
        made = makeFast(list, positions, buffer)
      } catch {
        return null // not a list (the native method says so), or closed
      }
      try {
        Object.defineProperty(list, FAST, { value: made })
      } catch {}
      return made
    }

    const makeFast = (list, positions, buffer) => {
      const n = positions.length - 4
      const [dataAt, formatsAt, codesAt] = positions
      if (n < 0 || codesAt + n > buffer.byteLength || formatsAt % 8 !== 0 || dataAt % 8 !== 0) return null
      const slots = new Float64Array(n + 1)
      for (let i = 0; i <= n; i++) slots[i] = dataAt + positions[3 + i]
      return {
        owner: list,
        n,
        bytes: new Uint8Array(buffer),
        words: new Int32Array(buffer, 0, buffer.byteLength >> 2),
        slots,
        formatWords: formatsAt >> 2,
        codesAt,
        // `<slot>s` as two words per item, made when first needed (0: not yet; a real one
        // starts with a digit).
        strFormats: new Int32Array(2 * n),
      }
    }

    const strFormat = (fast, i) => {
      if (fast.strFormats[2 * i] === 0) {
        const slotLen = fast.slots[i + 1] - fast.slots[i]
        if (slotLen > MAX_SLOT_LEN) {
          fast.strFormats[2 * i] = -1 // no format can say this slot's size: the native path reads it
          return
        }
        const text = `${slotLen}s`
        let lo = 0
        let hi = 0
        for (let k = 0; k < text.length; k++) {
          if (k < 4) lo |= text.charCodeAt(k) << (8 * k)
          else hi |= text.charCodeAt(k) << (8 * (k - 4))
        }
        fast.strFormats[2 * i] = lo
        fast.strFormats[2 * i + 1] = hi
      }
    }

    const kindOf = (fast, i, lo, hi, code) => {
      if (hi === 0 && code === CODE_PLAIN) {
        if (lo === FORMAT_INT_LO) return INT
        if (lo === FORMAT_FLOAT_LO) return FLOAT
        return 0
      }
      if (lo === FORMAT_PAD) {
        if (hi === FORMAT_BOOL_HI && code === CODE_PLAIN) return BOOL
        if (hi === FORMAT_NONE_HI && code === CODE_NONE) return NONE
        return 0
      }
      if (code === CODE_STR || code === CODE_BYTES) {
        strFormat(fast, i)
        if (fast.strFormats[2 * i] === -1) return 0
        if (lo === fast.strFormats[2 * i] && hi === fast.strFormats[2 * i + 1]) return code === CODE_STR ? STR : BYTES
      }
      return 0
    }

    const decodeWord = (kind, lo, hi) => {
      if (kind === INT) {
        // Exact in a double while |hi| < 2^21; a safe integer is a number, others a bigint
        // (as the native reader decides).
        if (hi >= -0x200000 && hi < 0x200000) {
          const value = hi * TWO_32 + (lo >>> 0)
          if (value >= -Number.MAX_SAFE_INTEGER && value <= Number.MAX_SAFE_INTEGER) return value
        }
        return (BigInt(hi) << 32n) | BigInt(lo >>> 0)
      }
      if (kind === FLOAT) {
        word[0] = lo
        word[1] = hi
        return wordFloat[0]
      }
      if (kind === BOOL) return hi >>> 24 !== 0
      return null
    }

    // Decodes the first copy in scratch (`len` bytes), trailing NULs stripped as CPython does.
    const decodeText = (kind, len) => {
      const bytes = scratchBytes
      let end = len
      while (end > 0 && bytes[end - 1] === 0) end--
      if (kind === BYTES) {
        // A copy, from Node's pool when small (as Buffer.from(string) makes one): an ArrayBuffer of its
        // own costs ~200 ns.
        const out = Buffer.allocUnsafe(end)
        for (let k = 0; k < end; k++) out[k] = bytes[k]
        return out
      }
      if (end <= 64) {
        // Short ASCII, the common item: built in place (TextDecoder costs ~300 ns a call).
        let text = ''
        let k = 0
        for (; k < end; k++) {
          const c = bytes[k]
          if (c >= 0x80) break
          text += String.fromCharCode(c)
        }
        if (k === end) return text
      }
      try {
        return decoder.decode(bytes.subarray(0, end))
      } catch {
        return ABSENT // not UTF-8: the native reader names the item
      }
    }

    // Item `i` (in range), or ABSENT.
    const read = (fast, i) => {
      const { bytes, words } = fast
      const codeAt = fast.codesAt + i
      const formatAt = fast.formatWords + 2 * i
      const at = fast.slots[i] / 4
      for (let t = 0; t < TRIES; t++) {
        const before = Atomics.load(bytes, codeAt)
        if (before === BUSY) return ABSENT
        const lo = load(words, formatAt)
        const hi = load(words, formatAt + 1)
        const kind = kindOf(fast, i, lo, hi, before)
        if (kind === 0) return ABSENT
        if (kind < STR) {
          const first0 = load(words, at)
          const first1 = load(words, at + 1)
          const middle = Atomics.load(bytes, codeAt)
          const lo2 = load(words, formatAt)
          const hi2 = load(words, formatAt + 1)
          const second0 = load(words, at)
          const second1 = load(words, at + 1)
          const after = Atomics.load(bytes, codeAt)
          if (before === middle && middle === after && lo === lo2 && hi === hi2 && first0 === second0 && first1 === second1) {
            return decodeWord(kind, first0, first1)
          }
          continue
        }
        const len = fast.slots[i + 1] - fast.slots[i]
        const count = len / 4
        growScratch(2 * count)
        const copy = scratch
        for (let k = 0; k < count; k++) copy[k] = load(words, at + k)
        const middle = Atomics.load(bytes, codeAt)
        const lo2 = load(words, formatAt)
        const hi2 = load(words, formatAt + 1)
        for (let k = 0; k < count; k++) copy[count + k] = load(words, at + k)
        const after = Atomics.load(bytes, codeAt)
        let same = before === middle && middle === after && lo === lo2 && hi === hi2
        for (let k = 0; same && k < count; k++) same = copy[k] === copy[count + k]
        if (same) return decodeText(kind, len)
      }
      return ABSENT
    }

    // Writes `value` at `i` (in range); false when the native writer must (a held item, a value
    // this path does not encode, or one too large: the native writer throws for it).
    const write = (fast, i, value) => {
      let lo = 0
      let hi = 0
      let formatLo
      let formatHi = 0
      let code = CODE_PLAIN
      let textLen = -1
      switch (typeof value) {
        case 'number':
          if (Number.isInteger(value) && Math.abs(value) <= Number.MAX_SAFE_INTEGER && !Object.is(value, -0)) {
            lo = value | 0
            hi = Math.floor(value / TWO_32) | 0
            formatLo = FORMAT_INT_LO
          } else {
            if (value !== value) return false // NaN: its bits are the native writer's
            wordFloat[0] = value
            lo = word[0]
            hi = word[1]
            formatLo = FORMAT_FLOAT_LO
          }
          break
        case 'boolean':
          hi = value ? 0x01000000 : 0
          formatLo = FORMAT_PAD
          formatHi = FORMAT_BOOL_HI
          break
        case 'object':
          if (value !== null) return false
          formatLo = FORMAT_PAD
          formatHi = FORMAT_NONE_HI
          code = CODE_NONE
          break
        case 'string': {
          const slotLen = fast.slots[i + 1] - fast.slots[i]
          if (slotLen > MAX_SLOT_LEN || value.length > slotLen) return false
          growScratch(slotLen / 4)
          const bytes = scratchBytes
          let written = 0
          const length = value.length
          for (; written < length; written++) {
            const c = value.charCodeAt(written)
            if (c >= 0x80) break
            bytes[written] = c
          }
          if (written < length) {
            const done = encoder.encodeInto(value, bytes.subarray(0, slotLen))
            if (done.read < length) return false
            written = done.written
          }
          bytes.fill(0, written, slotLen)
          textLen = slotLen
          strFormat(fast, i)
          formatLo = fast.strFormats[2 * i]
          formatHi = fast.strFormats[2 * i + 1]
          code = CODE_STR
          break
        }
        default:
          return false
      }
      const { bytes, words } = fast
      const codeAt = fast.codesAt + i
      const current = Atomics.load(bytes, codeAt)
      if (current === BUSY || Atomics.compareExchange(bytes, codeAt, current, BUSY) !== current) return false
      const at = fast.slots[i] / 4
      if (textLen < 0) {
        store(words, at, lo)
        store(words, at + 1, hi)
      } else {
        const copy = scratch
        for (let k = 0, count = textLen / 4; k < count; k++) store(words, at + k, copy[k])
      }
      const formatAt = fast.formatWords + 2 * i
      store(words, formatAt, formatLo)
      store(words, formatAt + 1, formatHi)
      Atomics.store(bytes, codeAt, code)
      return true
    }

    // The position of an in-range index, else -1 (the native method then throws its error).
    const positionOf = (fast, index) => {
      if (typeof index !== 'number' || !Number.isInteger(index)) return -1
      const p = index < 0 ? index + fast.n : index
      return p >= 0 && p < fast.n ? p : -1
    }

    const usable = (fast) => fast !== null && fast.bytes.length !== 0 // 0: closed (detached)

    // Python's `==` between an item as JS reads it and a needle this path compares (number,
    // boolean, null or well-formed string): numbers by exact value, bool as 0/1.
    const equal = (item, needle) => {
      switch (typeof item) {
        case 'number':
          return typeof needle === 'boolean' ? item === (needle ? 1 : 0) : item === needle
        case 'bigint':
          return typeof needle === 'number' && item == needle // eslint-disable-line eqeqeq -- exact across types
        case 'boolean':
          return typeof needle === 'number' ? (item ? 1 : 0) === needle : item === needle
        case 'string':
          return item === needle
        case 'object':
          return item === null && needle === null
        default:
          return false
      }
    }
    const comparable = (needle) => {
      const type = typeof needle
      return type === 'number' || type === 'boolean' || needle === null || (type === 'string' && wellFormed(needle))
    }

    const define = (key, value) =>
      Object.defineProperty(proto, key, { value, writable: true, configurable: true, enumerable: false })

    const itemAt = (list, fast, i) => {
      const value = read(fast, i)
      return value !== ABSENT ? value : native.get.call(list, i)
    }

    define('get', function get(index) {
      const fast = fastOf(this)
      if (usable(fast)) {
        const p = positionOf(fast, index)
        if (p >= 0) {
          const value = read(fast, p)
          if (value !== ABSENT) return value
        }
      }
      return native.get.call(this, index)
    })
    define('set', function set(index, value) {
      const fast = fastOf(this)
      if (usable(fast)) {
        const p = positionOf(fast, index)
        if (p >= 0 && write(fast, p, value)) return
      }
      native.set.call(this, index, value)
    })
    define('toArray', function toArray() {
      const fast = fastOf(this)
      if (!usable(fast)) return native.toArray.call(this)
      const out = []
      for (let i = 0; i < fast.n; i++) out.push(itemAt(this, fast, i))
      return out
    })
    define('count', function count(value) {
      const fast = fastOf(this)
      if (!usable(fast) || !comparable(value)) return native.count.call(this, value)
      let found = 0
      for (let i = 0; i < fast.n; i++) if (equal(itemAt(this, fast, i), value)) found++
      return found
    })
    define('index', function index(value) {
      const fast = fastOf(this)
      if (!usable(fast) || !comparable(value)) return native.index.call(this, value)
      for (let i = 0; i < fast.n; i++) if (equal(itemAt(this, fast, i), value)) return i
      return native.index.call(this, value) // throws ERR_SHM_VALUE_NOT_FOUND (or finds a late write)
    })
    // Item by item, as Python iterates with __getitem__: each step sees the current value.
    define(Symbol.iterator, function iterate() {
      const list = this
      const length = list.length
      let i = 0
      return {
        next() {
          if (i >= length) return { value: undefined, done: true }
          const at = i++
          const fast = fastOf(list)
          return { value: usable(fast) ? itemAt(list, fast, at) : native.get.call(list, at), done: false }
        },
        [Symbol.iterator]() {
          return this
        },
      }
    })

    // The native methods, for the specs that compare both paths (test hooks only).
    if (typeof process === 'object' && process?.env?.SHMKIT_TEST_HOOKS === '1') {
      Object.defineProperty(exports, '_listNative', { value: native, enumerable: false })
    }
  }
})()
