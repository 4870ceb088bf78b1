// ShareableList get/set/toArray/count/index and iteration in JS, over the segment's mapping:
// no native call, so no receiver check (~100 ns) per item. Installed after src/fast.rs.
//
// The Rust core stays the authority. The layout (count, slot offsets, where formats and codes
// start) is the one shmkit_core::list::Layout validated at attach, handed over once by
// `_layout`; the segment's header is never read here. Per access this path reads only what
// it recognises exactly — the int/float/bool/None formats, and `<slot>s` for str/bytes —
// through the core's reader protocol (code, copy, code, copy, code; see `load` below for the
// ordering), and never writes a byte while reading; on x86, toArray/count/index run that
// sequence over whole runs of items at once (see `scan`). Anything else (a busy item, a
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
    // A private copy of an 8-byte str/bytes slot.
    const pair = new Int32Array(2)
    const pairBytes = new Uint8Array(pair.buffer)
    // Private copies of str/bytes items (two copies side by side), grown on demand.
    let scratch = new Int32Array(64)
    let scratchBytes = new Uint8Array(scratch.buffer)
    const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
    const encoder = new TextEncoder()
    const wellFormed = typeof String.prototype.isWellFormed === 'function' ? (s) => s.isWellFormed() : () => false
    const fromCodes = String.fromCharCode
    const NodeBuffer = Buffer // a getter on Node's global object: read once

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
      // Offsets below are 32-bit word indexes (`>> 2`, Int32Array slots): past 2 GiB of segment
      // they would wrap, so only the native path runs there.
      if (buffer.byteLength > 0x7fffffff) return null
      const slots = new Int32Array(n + 1)
      for (let i = 0; i <= n; i++) slots[i] = positions[3 + i] / 4
      return {
        owner: list,
        n,
        bytes: new Uint8Array(buffer),
        words: new Int32Array(buffer, 0, buffer.byteLength >> 2),
        slots,
        dataAt,
        dataWords: dataAt >> 2,
        formatsAt,
        formatWords: formatsAt >> 2,
        codesAt,
        // `<slot>s` as two words per item, made when first needed (0: not yet; a real one
        // starts with a digit).
        strFormats: new Int32Array(2 * n),
        // Where each run of items copied together ends (see `scan`), made when first needed.
        chunkEnds: null,
      }
    }

    const strFormat = (fast, i) => {
      const slotLen = 4 * (fast.slots[i + 1] - fast.slots[i])
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
        const formats = fast.strFormats
        if (formats[2 * i] === 0) strFormat(fast, i)
        if (lo === formats[2 * i] && hi === formats[2 * i + 1] && lo !== -1) return code === CODE_STR ? STR : BYTES
      }
      return 0
    }

    const decodeWord = (kind, lo, hi) => {
      if (kind === INT) {
        if (hi === lo >> 31) return lo // an int32, the common int
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

    // The string of the `count` (0..8) ASCII bytes at `at`: one String.fromCharCode call, not a
    // concatenation per char (TextDecoder costs ~300 ns a call).
    const codesText = (bytes, at, count) => {
      switch (count) {
        case 0:
          return ''
        case 1:
          return fromCodes(bytes[at])
        case 2:
          return fromCodes(bytes[at], bytes[at + 1])
        case 3:
          return fromCodes(bytes[at], bytes[at + 1], bytes[at + 2])
        case 4:
          return fromCodes(bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3])
        case 5:
          return fromCodes(bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3], bytes[at + 4])
        case 6:
          return fromCodes(bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3], bytes[at + 4], bytes[at + 5])
        case 7:
          return fromCodes(bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3], bytes[at + 4], bytes[at + 5], bytes[at + 6])
        default:
          return fromCodes(bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3], bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7])
      }
    }

    // The str or bytes item whose slot (`count` words) starts at word `at` of a private copy
    // (`words`, and `bytes` over the same memory), trailing NULs stripped as CPython does; ABSENT
    // for a str that is not UTF-8.
    const textAt = (kind, words, bytes, at, count) => {
      let last = at + count - 1
      while (last >= at && words[last] === 0) last--
      // Little-endian: the last non-NUL byte is the highest non-zero byte of the last non-zero word.
      const end = last < at ? 0 : 4 * (last - at + 1) - (Math.clz32(words[last]) >> 3)
      const from = 4 * at
      if (kind === BYTES) {
        // A copy, from Node's pool when small (as Buffer.from(string) makes one): an ArrayBuffer of its
        // own costs ~200 ns.
        const out = NodeBuffer.allocUnsafe(end)
        if (end <= 64) for (let k = 0; k < end; k++) out[k] = bytes[from + k]
        else out.set(bytes.subarray(from, from + end))
        return out
      }
      if (end <= 64) {
        // Short ASCII, the common item: built from the bytes in place.
        let high = 0
        for (let k = at; k <= last; k++) high |= words[k]
        if ((high & 0x80808080) === 0) {
          if (end <= 8) return codesText(bytes, from, end)
          let text = ''
          let k = 0
          for (; k + 8 <= end; k += 8) text += codesText(bytes, from + k, 8)
          return text + codesText(bytes, from + k, end - k)
        }
      }
      try {
        return decoder.decode(bytes.subarray(from, from + end))
      } catch {
        return ABSENT // not UTF-8: the native reader names the item
      }
    }

    // Item `i` (in range), or ABSENT.
    const read = (fast, i) => {
      const bytes = fast.bytes
      const words = fast.words
      const codeAt = fast.codesAt + i
      const formatAt = fast.formatWords + 2 * i
      const at = fast.dataWords + fast.slots[i]
      const count = fast.slots[i + 1] - fast.slots[i]
      for (let t = 0; t < TRIES; t++) {
        const before = Atomics.load(bytes, codeAt)
        if (before === BUSY) return ABSENT
        const lo = load(words, formatAt)
        const hi = load(words, formatAt + 1)
        const kind = kindOf(fast, i, lo, hi, before)
        if (kind === 0) return ABSENT
        if (kind < STR || count === 2) {
          // Eight bytes: a number, bool or None, or a str/bytes slot of 8 bytes.
          const first0 = load(words, at)
          const first1 = load(words, at + 1)
          const middle = Atomics.load(bytes, codeAt)
          const lo2 = load(words, formatAt)
          const hi2 = load(words, formatAt + 1)
          const second0 = load(words, at)
          const second1 = load(words, at + 1)
          const after = Atomics.load(bytes, codeAt)
          if (before === middle && middle === after && lo === lo2 && hi === hi2 && first0 === second0 && first1 === second1) {
            if (kind < STR) return decodeWord(kind, first0, first1)
            pair[0] = first0
            pair[1] = first1
            return textAt(kind, pair, pairBytes, 0, 2)
          }
          continue
        }
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
        if (same) return textAt(kind, copy, scratchBytes, 0, count)
      }
      return ABSENT
    }

    // Bulk reads, for toArray/count/index on x86 only (elsewhere they read item by item). A run
    // of items (`chunkEnds`, up to CHUNK bytes of data and formats) is copied into a private
    // buffer whole, in five copies: its codes, its data and formats, its codes, its data and
    // formats, its codes. An item is then taken from the first copy only when its three codes
    // agree and are not BUSY and its format and data agree between the two copies: the
    // per-item test of `read`, on the same sequence. Any other item (held, changed between the
    // copies, a format not recognised here, invalid UTF-8) goes alone through `read` and then
    // the native method, as before.
    // Why the order holds: on x86 (TSO) the CPU never reorders a load with another load, and
    // every copy's loads (memmove's, plain, vector or string moves) are ordinary loads; the
    // Atomics.load of the per-item path is the same mov there, its only effect being on the
    // compiler. Each copy here is its own %TypedArray%.prototype.set call (a builtin calling
    // memmove; V8 neither inlines it nor moves memory accesses across a call), so the five
    // copies are read in program order, each between the ones before and after it; only the
    // order inside one copy is free (memmove may even read a byte twice), which the per-item
    // protocol does not fix either: its format and data loads are plain, and each copy still
    // holds, byte by byte, a value the segment held while it was taken. On Arm this argument
    // fails (loads may be reordered without a barrier), so the bulk path is x86 only.
    const bulk = tso
    // Bytes of data and formats copied at once (each copied twice); a longer item is read alone.
    const CHUNK = 32768
    const COLLECT = 0
    const COUNT = 1
    const FIND = 2
    // An item count/index need not build, as no needle equals it (a bytes item, or a str that
    // is not the needle).
    const UNEQUAL = Symbol('shmkit.unequal')
    let bulkCopy = null
    let bulkWords = null
    let bulkCompare = null // a Buffer over the same memory, for its compare
    // Test hook (with SHMKIT_TEST_HOOKS=1 only): called between the copies of a run, where a
    // writer in another process could write.
    let betweenCopies = null

    const chunksOf = (fast) => {
      if (fast.chunkEnds !== null) return fast.chunkEnds
      const { slots, n } = fast
      const ends = []
      for (let start = 0; start < n; ) {
        let end = start + 1
        while (end < n && 4 * (slots[end + 1] - slots[start]) + 8 * (end + 1 - start) <= CHUNK) end++
        ends.push(end)
        start = end
      }
      fast.chunkEnds = Int32Array.from(ends)
      return fast.chunkEnds
    }

    // Format and data words of item `i` of a chunk (format at word `formatAt`, `count` data words
    // at `at`), the same in both copies (`second` words apart).
    const sameInBoth = (words, formatAt, at, count, second) => {
      if (words[formatAt] !== words[formatAt + second] || words[formatAt + 1] !== words[formatAt + 1 + second]) return false
      for (let k = 0; k < count; k++) if (words[at + k] !== words[at + k + second]) return false
      return true
    }

    // The needle of count/index as UTF-8 in `needleWords`, zero-padded; its length in bytes, or
    // -1 when no item can equal it (it ends with NUL, which readers strip, or is too long).
    // Kept between calls up to NEEDLE_KEPT words; a longer needle gets an array of its own.
    const NEEDLE_KEPT = 1024
    const keptNeedle = new Int32Array(NEEDLE_KEPT)
    const keptNeedleBytes = new Uint8Array(keptNeedle.buffer)
    let needleWords = keptNeedle
    const needleWordsOf = (needle) => {
      if (needle.length > MAX_SLOT_LEN || (needle.length > 0 && needle.charCodeAt(needle.length - 1) === 0)) return -1
      const words = ((3 * needle.length) >> 2) + 2
      let bytes = keptNeedleBytes
      if (words <= NEEDLE_KEPT) {
        needleWords = keptNeedle
        needleWords.fill(0, 0, words)
      } else {
        needleWords = new Int32Array(words)
        bytes = new Uint8Array(needleWords.buffer)
      }
      const { read, written } = encoder.encodeInto(needle, bytes.subarray(0, 4 * words))
      return read === needle.length ? written : -1
    }
    // Whether the slot of `count` words at `at` holds exactly the needle's `length` bytes, then
    // NULs: the str item, trailing NULs stripped, is the needle (valid UTF-8, then).
    const holdsNeedle = (words, at, count, length) => {
      const needleCount = (length + 3) >> 2
      if (length < 0 || needleCount > count) return false
      for (let k = 0; k < needleCount; k++) if (words[at + k] !== needleWords[k]) return false
      for (let k = needleCount; k < count; k++) if (words[at + k] !== 0) return false
      return true
    }

    // Whether `count` words at `at` hold ASCII bytes only.
    const ascii = (words, at, count) => {
      let high = 0
      for (let k = 0; k < count; k++) high |= words[at + k]
      return (high & 0x80808080) === 0
    }

    // toArray (COLLECT: returns the items), count (COUNT: how many equal `needle`) or index
    // (FIND: the first that does, or -1), over bulk copies of the list.
    const scan = (list, fast, mode, needle) => {
      const ends = chunksOf(fast)
      if (bulkCopy === null) {
        // Two copies of a chunk's data and formats, then its three copies of codes (a chunk has
        // at most CHUNK / 16 items: 8 bytes of format and at least 8 of data each).
        bulkWords = new Int32Array((2 * CHUNK + (3 * CHUNK) / 16) / 4)
        bulkCopy = new Uint8Array(bulkWords.buffer)
        bulkCompare = NodeBuffer.from(bulkWords.buffer)
      }
      const copy = bulkCopy
      const copyWords = bulkWords
      const compare = bulkCompare
      const { bytes, slots } = fast
      // Filled in place when not too long for V8's fast elements (pushing costs twice as much).
      const out = mode !== COLLECT ? null : fast.n <= 65536 ? new Array(fast.n) : []
      // count/index compare a str needle's UTF-8 with each str slot (see below) rather than
      // building every item.
      const needleLength = typeof needle === 'string' ? needleWordsOf(needle) : -1
      let found = 0
      let start = 0
      for (let c = 0; c < ends.length; c++) {
        const end = ends[c]
        const items = end - start
        const dataLen = 4 * (slots[end] - slots[start])
        const half = dataLen + 8 * items
        const codes1 = 2 * CHUNK
        const codes2 = codes1 + items
        const codes3 = codes2 + items
        const copied = half <= CHUNK
        let same = false
        if (copied) {
          const codes = bytes.subarray(fast.codesAt + start, fast.codesAt + end)
          const data = bytes.subarray(fast.dataAt + 4 * slots[start], fast.dataAt + 4 * slots[end])
          const formats = bytes.subarray(fast.formatsAt + 8 * start, fast.formatsAt + 8 * end)
          copy.set(codes, codes1)
          if (betweenCopies !== null) betweenCopies(list, 0)
          copy.set(data, 0)
          copy.set(formats, dataLen)
          if (betweenCopies !== null) betweenCopies(list, 1)
          copy.set(codes, codes2)
          if (betweenCopies !== null) betweenCopies(list, 2)
          copy.set(data, half)
          copy.set(formats, half + dataLen)
          if (betweenCopies !== null) betweenCopies(list, 3)
          copy.set(codes, codes3)
          // Usually nothing changed: two memcmp then say so for every item of the chunk (the
          // codes compared as [codes1, codes3) against [codes2, codes3 + items)).
          same =
            compare.compare(compare, codes2, codes3 + items, codes1, codes3) === 0 &&
            compare.compare(compare, half, 2 * half, 0, half) === 0
        }
        const second = half >> 2 // from a word of the first copy to the same word of the second
        const formatWords = dataLen >> 2
        const base = slots[start]
        let slotEnd = base
        for (let i = start; i < end; i++) {
          let value = ABSENT
          const j = i - start
          const slotStart = slotEnd
          slotEnd = slots[i + 1]
          const code = copy[codes1 + j]
          if (copied && code !== BUSY && (same || (code === copy[codes2 + j] && code === copy[codes3 + j]))) {
            const formatAt = formatWords + 2 * j
            const kind = kindOf(fast, i, copyWords[formatAt], copyWords[formatAt + 1], code)
            const at = slotStart - base
            const count = slotEnd - slotStart
            if (kind !== 0 && (same || sameInBoth(copyWords, formatAt, at, count, second))) {
              if (kind < STR) value = decodeWord(kind, copyWords[at], copyWords[at + 1])
              else if (mode === COLLECT) value = textAt(kind, copyWords, copy, at, count)
              // count/index: no needle equals a bytes item; a str slot holding exactly the
              // needle's bytes is the needle; any other ASCII one is valid and not it; the rest
              // are decoded (and so checked).
              else if (kind === BYTES) value = UNEQUAL
              else if (holdsNeedle(copyWords, at, count, needleLength)) value = needle
              else if (ascii(copyWords, at, count)) value = UNEQUAL
              else value = textAt(kind, copyWords, copy, at, count)
            }
          }
          if (value === ABSENT) value = itemAt(list, fast, i)
          if (mode === COLLECT) out[i] = value
          else if (equal(value, needle)) {
            if (mode === FIND) return i
            found++
          }
        }
        start = end
      }
      return mode === COLLECT ? out : mode === COUNT ? found : -1
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
          const count = fast.slots[i + 1] - fast.slots[i]
          const slotLen = 4 * count
          const length = value.length
          if (slotLen > MAX_SLOT_LEN || length > slotLen) return false
          if (fast.strFormats[2 * i] === 0) strFormat(fast, i)
          formatLo = fast.strFormats[2 * i]
          formatHi = fast.strFormats[2 * i + 1]
          code = CODE_STR
          if (count === 2) {
            // An 8-byte slot and ASCII: the two words built in place, stored as an int's.
            let high = 0
            for (let k = 0; k < length; k++) {
              const c = value.charCodeAt(k)
              high |= c
              if (k < 4) lo |= c << (8 * k)
              else hi |= c << (8 * (k - 4))
            }
            if (high < 0x80) break
            lo = 0
            hi = 0
          }
          growScratch(count)
          const bytes = scratchBytes
          let written = 0
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
          if (slotLen <= 64) for (let k = written; k < slotLen; k++) bytes[k] = 0
          else bytes.fill(0, written, slotLen)
          textLen = slotLen
          break
        }
        default:
          return false
      }
      const { bytes, words } = fast
      const codeAt = fast.codesAt + i
      const current = Atomics.load(bytes, codeAt)
      if (current === BUSY || Atomics.compareExchange(bytes, codeAt, current, BUSY) !== current) return false
      const at = fast.dataWords + fast.slots[i]
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
      if (bulk) return scan(this, fast, COLLECT, null)
      const out = []
      for (let i = 0; i < fast.n; i++) out.push(itemAt(this, fast, i))
      return out
    })
    define('count', function count(value) {
      const fast = fastOf(this)
      if (!usable(fast) || !comparable(value)) return native.count.call(this, value)
      if (bulk) return scan(this, fast, COUNT, value)
      let found = 0
      for (let i = 0; i < fast.n; i++) if (equal(itemAt(this, fast, i), value)) found++
      return found
    })
    define('index', function index(value) {
      const fast = fastOf(this)
      if (!usable(fast) || !comparable(value)) return native.index.call(this, value)
      const at = bulk ? scan(this, fast, FIND, value) : -1
      if (at >= 0) return at
      if (!bulk) for (let i = 0; i < fast.n; i++) if (equal(itemAt(this, fast, i), value)) return i
      return native.index.call(this, value) // throws ERR_SHM_VALUE_NOT_FOUND (or finds a late write)
    })
    // Item by item, as Python iterates with __getitem__: each step sees the current value.
    // (Private fields: the list's fast-path state is not reachable through its iterators.)
    class ListIterator {
      #list
      #fast
      #length
      #at = 0
      constructor(list, fast, length) {
        this.#list = list
        this.#fast = fast
        this.#length = length
      }

      next() {
        const at = this.#at
        if (at >= this.#length) return { value: undefined, done: true }
        this.#at = at + 1
        const fast = this.#fast
        return { value: usable(fast) ? itemAt(this.#list, fast, at) : native.get.call(this.#list, at), done: false }
      }

      [Symbol.iterator]() {
        return this
      }
    }
    define(Symbol.iterator, function iterate() {
      return new ListIterator(this, fastOf(this), this.length)
    })

    // The native methods, for the specs that compare both paths (test hooks only).
    if (typeof process === 'object' && process?.env?.SHMKIT_TEST_HOOKS === '1') {
      Object.defineProperty(exports, '_listNative', { value: native, enumerable: false })
      Object.defineProperty(exports, '_listBetweenCopies', {
        value: (hook) => {
          betweenCopies = typeof hook === 'function' ? hook : null
        },
        enumerable: false,
      })
    }
  }
})()
