// Compiled by types.spec.ts with `tsc --strict --noEmit`: every line without a
// `@ts-expect-error` must compile, and every `@ts-expect-error` line must be an error.
import { type Item, ShareableList, SharedMemory, SharedMemoryManager } from '../../index.js'

declare const name: string

// The item type is inferred from the constructor's iterable...
const sl = new ShareableList([1, 2, 3, 4, 5])
sl.set(0, sl.get(0) * 10) // the tutorial's line
const first: number = sl.get(0)
const last: number | undefined = sl.at(-1)
const all: number[] = sl.toArray()
let sum = 0
for (const value of sl) sum += value
const spread: number[] = [...sl]
// @ts-expect-error a string does not go into a list of numbers
sl.set(0, 'ten')
// @ts-expect-error at() is undefined outside the list
const notUndefined: number = sl.at(9)

// ...widened, not literal: any number may be written back
const literals = new ShareableList([1, 2, 3])
literals.set(0, 42)

const mixed = new ShareableList([1, 'two', null])
const item: string | number | null = mixed.get(1)
// @ts-expect-error a boolean is not one of this list's item types
mixed.set(0, true)

const fromGenerator = new ShareableList((function* () {
  yield 1n
  yield 2n
})())
const big: bigint = fromGenerator.get(0)

// ...given explicitly to open(), which takes a name or what toJSON() makes...
const strings = ShareableList.open<string>(name)
const upper: string = strings.get(0).toUpperCase()
const json: { name: string } = sl.toJSON()
const reopened = ShareableList.open(json)
const unknownItem: Item = reopened.get(0)
// @ts-expect-error without a type argument an item is any Item
const notNumber: number = reopened.get(0)
// @ts-expect-error open() needs a name
ShareableList.open({})

// ...and defaults to Item.
const empty: ShareableList = new ShareableList()
const anything: ShareableList<Item> = empty
const attached = new ShareableList(null, { name })
const bytes = new ShareableList([new Uint8Array([1])])
const buffer: Uint8Array = bytes.get(0)

// The manager's lists are typed the same way.
{
  using smm = new SharedMemoryManager()
  const managed = smm.ShareableList(['a', 'b'])
  managed.set(0, managed.get(1).toUpperCase())
  // @ts-expect-error a number does not go into a list of strings
  managed.set(0, 1)
  const explicit = smm.ShareableList<Item>([1])
  explicit.set(0, 'one')
  const segment: SharedMemory = smm.SharedMemory(64)
}

{
  using shm = SharedMemory.create(64)
  const size: number = shm.toJSON().size
}

export { all, anything, attached, big, buffer, first, item, last, notNumber, notUndefined, spread, sum, unknownItem, upper }
