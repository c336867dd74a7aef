/**
 * The growing columns of the dataset index: numbers appended one row at a time into a buffer
 * that doubles as it fills, and texts as an offsets + UTF-8 bytes pair, each written out as
 * `.npy` bytes that numpy memory-maps. A text column of N rows is two arrays: `offsets` (int64,
 * N + 1, the first 0) and `utf8` (uint8), row i being `utf8[offsets[i]:offsets[i + 1]]`; so a
 * reader decodes only the rows it reads, and a million ids cost no million Python objects.
 *
 * @module
 */
import { encodeNpy, type NpyDtype } from "../format/npy.ts";
import type { LabelKind } from "./columns.ts";

/** The dtypes the index's number columns use. */
export type ColumnDtype = Extract<NpyDtype, "<i4" | "<i8" | "<f8" | "|u1">;

type ColumnArray = Int32Array | BigInt64Array | Float64Array | Uint8Array;

const ARRAYS: Record<ColumnDtype, { new (n: number): ColumnArray }> = {
  "<i4": Int32Array,
  "<i8": BigInt64Array,
  "<f8": Float64Array,
  "|u1": Uint8Array,
};

/** One array of the index: its `.npy` bytes, and the dtype and shape they hold. */
export interface IndexArray {
  dtype: ColumnDtype;
  shape: number[];
  bytes: Uint8Array;
}

/** Raised when a value does not fit its column. */
export class IndexColumnError extends Error {
  override readonly name = "IndexColumnError";
}

/**
 * A column of numbers, `width` per row (a row of `original_size` is 2), appended row by row.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeNpy } from "../format/npy.ts";
 *
 * const sizes = new NumberColumn("<i4", 2);
 * sizes.push([480, 320]);
 * sizes.push([256, 256]);
 * const array = decodeNpy(sizes.array().bytes);
 * assert.deepEqual(array.shape, [2, 2]);
 * assert.deepEqual([...array.data], [480, 320, 256, 256]);
 * ```
 */
export class NumberColumn {
  readonly dtype: ColumnDtype;
  readonly width: number;
  #data: ColumnArray;
  #length = 0;

  constructor(dtype: ColumnDtype, width = 1) {
    this.dtype = dtype;
    this.width = width;
    this.#data = new ARRAYS[dtype](1024 * width);
  }

  /** Rows appended so far. */
  get rows(): number {
    return this.#length / this.width;
  }

  /** Appends one row: a number, or `width` numbers. */
  push(values: number | readonly number[]): void {
    const row = typeof values === "number" ? [values] : values;
    if (row.length !== this.width) {
      throw new IndexColumnError(`expected ${this.width} values a row, found ${row.length}`);
    }
    if (this.#length + this.width > this.#data.length) this.#grow();
    const data = this.#data;
    for (const v of row) {
      if (data instanceof BigInt64Array) data[this.#length++] = BigInt(v);
      else data[this.#length++] = v;
    }
  }

  /** Overwrites value `k` of row `row` (a file's row count, known when its last row comes). */
  set(row: number, value: number, k = 0): void {
    const i = row * this.width + k;
    if (i >= this.#length) throw new IndexColumnError(`row ${row}: beyond the ${this.rows} rows`);
    if (this.#data instanceof BigInt64Array) this.#data[i] = BigInt(value);
    else this.#data[i] = value;
  }

  /** The column as an array of shape (rows,) or (rows, width). */
  array(): IndexArray {
    const shape = this.width === 1 ? [this.rows] : [this.rows, this.width];
    const data = this.#data.subarray(0, this.#length);
    return { dtype: this.dtype, shape, bytes: encodeNpy({ dtype: this.dtype, shape, data }) };
  }

  #grow(): void {
    const grown = new ARRAYS[this.dtype](this.#data.length * 2);
    // Same element type on both sides; the cast only quiets the union.
    (grown as Uint8Array).set(this.#data as Uint8Array);
    this.#data = grown;
  }
}

/**
 * A column of texts as offsets into UTF-8 bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeNpy } from "../format/npy.ts";
 *
 * const ids = new TextColumn();
 * ids.push("00017");
 * ids.push("été");
 * const { offsets, utf8 } = ids.arrays();
 * assert.deepEqual([...decodeNpy(offsets.bytes).data], [0n, 5n, 10n]);
 * assert.equal(new TextDecoder().decode(decodeNpy(utf8.bytes).data as Uint8Array).slice(5), "été");
 * ```
 */
export class TextColumn {
  readonly #offsets = new NumberColumn("<i8");
  #bytes = new Uint8Array(1 << 16);
  #length = 0;
  readonly #encoder = new TextEncoder();

  constructor() {
    this.#offsets.push(0);
  }

  /** Rows appended so far. */
  get rows(): number {
    return this.#offsets.rows - 1;
  }

  /** Appends one text. */
  push(text: string): void {
    // UTF-8 takes at most 3 bytes per UTF-16 code unit.
    while (this.#length + text.length * 3 > this.#bytes.length) {
      const grown = new Uint8Array(this.#bytes.length * 2);
      grown.set(this.#bytes.subarray(0, this.#length));
      this.#bytes = grown;
    }
    const { written } = this.#encoder.encodeInto(text, this.#bytes.subarray(this.#length));
    this.#length += written;
    this.#offsets.push(this.#length);
  }

  /** Appends `count` empty texts (rows before a column's first value). */
  pushEmpty(count: number): void {
    for (let i = 0; i < count; i++) this.#offsets.push(this.#length);
  }

  /** The two arrays. */
  arrays(): { offsets: IndexArray; utf8: IndexArray } {
    const shape = [this.#length];
    const data = this.#bytes.subarray(0, this.#length);
    return {
      offsets: this.#offsets.array(),
      utf8: { dtype: "|u1", shape, bytes: encodeNpy({ dtype: "|u1", shape, data }) },
    };
  }
}

/**
 * A label column: an integer field as int64 (-1 where missing), a number as float64 (NaN where
 * missing), and text as int32 codes (-1 where missing) into its distinct values, a text column
 * in order of first appearance — labels are categories, so a million rows hold a few values.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeNpy } from "../format/npy.ts";
 *
 * const gender = new LabelColumn("gender", "text");
 * for (const value of ["female", null, "male", "female"]) gender.push("img", value);
 * const arrays = gender.arrays();
 * assert.deepEqual([...decodeNpy(arrays.label_gender.bytes).data], [0, -1, 1, 0]);
 * assert.deepEqual(arrays["label_gender.values.offsets"].shape, [3]);
 * ```
 */
export class LabelColumn {
  readonly field: string;
  readonly kind: LabelKind;
  readonly #codes: NumberColumn;
  readonly #values = new TextColumn();
  readonly #vocabulary = new Map<string, number>();

  constructor(field: string, kind: LabelKind) {
    this.field = field;
    this.kind = kind;
    this.#codes = new NumberColumn(kind === "integer" ? "<i8" : kind === "number" ? "<f8" : "<i4");
  }

  /** Appends the label of image `id`. */
  push(id: string, value: string | number | null | undefined): void {
    const wrong = (expected: string) =>
      new IndexColumnError(
        `image ${id}: label ${this.field}: expected ${expected}, found ${JSON.stringify(value)}`,
      );
    if (value === null || value === undefined) {
      this.#codes.push(this.kind === "number" ? NaN : -1);
    } else if (this.kind === "integer") {
      if (!Number.isSafeInteger(value)) throw wrong("an integer or none");
      this.#codes.push(value as number);
    } else if (this.kind === "number") {
      if (typeof value !== "number") throw wrong("a number or none");
      this.#codes.push(value);
    } else {
      const text = String(value);
      let code = this.#vocabulary.get(text);
      if (code === undefined) {
        code = this.#vocabulary.size;
        this.#vocabulary.set(text, code);
        this.#values.push(text);
      }
      this.#codes.push(code);
    }
  }

  /** `label_<field>`, and for text `label_<field>.values.offsets` and `.utf8`. */
  arrays(): Record<string, IndexArray> {
    const name = `label_${this.field}`;
    const out: Record<string, IndexArray> = { [name]: this.#codes.array() };
    if (this.kind === "text") textArrays(out, `${name}.values`, this.#values);
    return out;
  }
}

/**
 * A text column that exists once a row has a value (captions, metadata), the rows before it
 * and without one holding "".
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const captions = new OptionalTextColumn("caption");
 * captions.push(undefined);
 * assert.deepEqual(captions.arrays(), {});
 * captions.push("a dog");
 * assert.deepEqual(captions.arrays()["caption.offsets"].shape, [3]);
 * ```
 */
export class OptionalTextColumn {
  readonly name: string;
  #column: TextColumn | null = null;
  #rows = 0;

  constructor(name: string) {
    this.name = name;
  }

  push(text: string | undefined): void {
    if (text !== undefined && this.#column === null) {
      this.#column = new TextColumn();
      this.#column.pushEmpty(this.#rows);
    }
    this.#column?.push(text ?? "");
    this.#rows++;
  }

  /** `<name>.offsets` and `<name>.utf8`, or nothing when no row had a value. */
  arrays(): Record<string, IndexArray> {
    const out: Record<string, IndexArray> = {};
    if (this.#column) textArrays(out, this.name, this.#column);
    return out;
  }
}

/**
 * Adds a text column's arrays as `<name>.offsets` and `<name>.utf8`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const ids = new TextColumn();
 * ids.push("00017");
 * const arrays = {};
 * textArrays(arrays, "id", ids);
 * assert.deepEqual(Object.keys(arrays), ["id.offsets", "id.utf8"]);
 * ```
 */
export function textArrays(
  into: Record<string, IndexArray>,
  name: string,
  column: TextColumn,
): void {
  const { offsets, utf8 } = column.arrays();
  into[`${name}.offsets`] = offsets;
  into[`${name}.utf8`] = utf8;
}
