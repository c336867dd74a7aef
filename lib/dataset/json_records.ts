/**
 * Streams the entries of a JSON file whose top level is one object (`{"0": {...}, "1": {...}}`)
 * without holding the file in memory: bytes are scanned chunk by chunk, and each entry's value
 * is parsed on its own as soon as its closing brace arrives.
 *
 * @module
 */

/** Raised for malformed JSON; the message names the file, line, column and byte offset. */
export class JsonRecordsError extends Error {
  override readonly name = "JsonRecordsError";
}

/** One top-level entry. */
export interface JsonRecord {
  key: string;
  value: unknown;
  /** 1-based line where the entry's key starts. */
  line: number;
}

const WS = new Uint8Array(256);
for (const c of [0x20, 0x09, 0x0a, 0x0d]) WS[c] = 1;

type State =
  | "start"
  | "beforeKey"
  | "key"
  | "afterKey"
  | "beforeValue"
  | "value"
  | "afterValue"
  | "end";

function describe(byte: number | undefined): string {
  if (byte === undefined) return "end of file";
  return byte >= 0x20 && byte < 0x7f
    ? `'${String.fromCharCode(byte)}'`
    : `byte 0x${byte.toString(16)}`;
}

/**
 * Yields the entries of the top-level object of `source`, in file order. `name` is used in
 * error messages (usually the file path).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const text = '{"0": {"category": "training"},\n "1": {"category": "validation"}}';
 * const chunks = [new TextEncoder().encode(text)];
 * const got = await Array.fromAsync(jsonRecords(chunks, "spec.json"));
 * assert.deepEqual(got, [
 *   { key: "0", value: { category: "training" }, line: 1 },
 *   { key: "1", value: { category: "validation" }, line: 2 },
 * ]);
 * ```
 */
export async function* jsonRecords(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  name: string,
): AsyncGenerator<JsonRecord> {
  const scan = new RecordScanner(name);
  for await (const chunk of source) {
    scan.partStart = 0;
    const n = chunk.length;
    for (let i = 0; i < n; i++) {
      if (scan.state !== "value") {
        scan.step(chunk, i);
        continue;
      }
      // Inside a record: nearly all bytes of the file are here.
      const end = scan.skipValue(chunk, i);
      if (end === n) break;
      i = end;
      yield scan.record(chunk, i);
    }
    if (scan.state === "key" || scan.state === "value") {
      scan.parts.push(chunk.subarray(scan.partStart));
    }
    scan.base += n;
  }
  scan.finish();
}

/** Where the scan of the top-level object stands, carried from one chunk to the next. */
class RecordScanner {
  readonly #name: string;
  readonly #decoder = new TextDecoder("utf-8", { fatal: true });
  state: State = "start";
  #entries = 0;
  #line = 1;
  /** Absolute offset of the current line's first byte. */
  #lineStart = 0;
  /** Absolute offset of the current chunk's first byte. */
  base = 0;
  /** The bytes of a key or record that started in an earlier chunk. */
  parts: Uint8Array[] = [];
  /** Where, in the current chunk, the key or record being read starts. */
  partStart = 0;
  #depth = 0;
  #inString = false;
  #escaped = false;
  #key = "";
  #keyLine = 0;
  #valueOffset = 0;
  #valueLine = 0;
  #valueColumn = 0;

  constructor(name: string) {
    this.#name = name;
  }

  /**
   * Scans a record's bytes from `i`, tracking only strings and nesting (a tight loop: nearly
   * all of a file is inside records). Returns the index of its closing brace, or the chunk's
   * length when it goes on in the next chunk.
   */
  skipValue(chunk: Uint8Array, i: number): number {
    const n = chunk.length;
    let j = i;
    for (; j < n; j++) {
      const d = chunk[j];
      if (this.#inString) {
        if (this.#escaped) this.#escaped = false;
        else if (d === 0x5c) this.#escaped = true;
        else if (d === 0x22) this.#inString = false;
      } else if (d === 0x22) this.#inString = true;
      else if (d === 0x7b || d === 0x5b) this.#depth++;
      else if (d === 0x7d || d === 0x5d) {
        if (--this.#depth === 0) break;
      } else if (d === 0x0a) {
        this.#line++;
        this.#lineStart = this.base + j + 1;
      }
    }
    return j;
  }

  /** The record whose closing brace is at `end`, parsed on its own. */
  record(chunk: Uint8Array, end: number): JsonRecord {
    const text = this.#decode(this.#collect(chunk, end + 1), this.#valueOffset);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      if (!(error instanceof SyntaxError)) throw error;
      throw new JsonRecordsError(
        `${this.#name}: malformed JSON in the record of ${JSON.stringify(this.#key)}${
          this.#where(text, error.message)
        }: ${error.message}`,
      );
    }
    this.#entries++;
    this.state = "afterValue";
    return { key: this.#key, value, line: this.#keyLine };
  }

  /** Where in the file a parse error of a record is, from its position in the record. */
  #where(text: string, message: string): string {
    const pos = Number(/position (\d+)/.exec(message)?.[1]);
    if (!Number.isFinite(pos)) return "";
    // Positions count UTF-16 units of the record text; the spec is ASCII.
    const before = text.slice(0, pos);
    const nl = before.lastIndexOf("\n");
    const l = this.#valueLine + (before.match(/\n/g)?.length ?? 0);
    const col = nl >= 0 ? pos - nl : this.#valueColumn + pos;
    return ` at line ${l}, column ${col} (byte ${this.#valueOffset + pos})`;
  }

  /** One byte outside the records: the structure of the top-level object. */
  step(chunk: Uint8Array, i: number): void {
    const c = chunk[i];
    if (c === 0x0a) {
      this.#line++;
      this.#lineStart = this.base + i + 1;
    }
    if (WS[c] && this.state !== "key") return;
    const at = this.base + i;
    switch (this.state) {
      case "start":
        if (c !== 0x7b) {
          this.#fail(at, `expected '{' to open the top-level object, found ${describe(c)}`);
        }
        this.state = "beforeKey";
        break;
      case "beforeKey":
        if (c === 0x7d && this.#entries === 0) {
          this.state = "end";
          break;
        }
        if (c !== 0x22) this.#fail(at, `expected '"' to start an entry key, found ${describe(c)}`);
        this.state = "key";
        this.partStart = i;
        this.#keyLine = this.#line;
        this.#escaped = false;
        break;
      case "key":
        this.#keyByte(chunk, i);
        break;
      case "afterKey":
        if (c !== 0x3a) {
          this.#fail(
            at,
            `expected ':' after key ${JSON.stringify(this.#key)}, found ${describe(c)}`,
          );
        }
        this.state = "beforeValue";
        break;
      case "beforeValue":
        this.#openValue(c, i);
        break;
      case "afterValue":
        if (c === 0x2c) this.state = "beforeKey";
        else if (c === 0x7d) this.state = "end";
        else {
          this.#fail(
            at,
            `expected ',' or '}' after the record of ${JSON.stringify(this.#key)}, found ${
              describe(c)
            }`,
          );
        }
        break;
      case "end":
        this.#fail(at, `unexpected ${describe(c)} after the top-level object`);
    }
  }

  /** Throws unless the object was closed. */
  finish(): void {
    if (this.state === "end") return;
    const inside = this.state === "value"
      ? ` inside the record of ${JSON.stringify(this.#key)} (line ${this.#keyLine})`
      : "";
    this.#fail(this.base, `unexpected end of file${inside}`);
  }

  #keyByte(chunk: Uint8Array, i: number): void {
    const c = chunk[i];
    const at = this.base + i;
    if (this.#escaped) this.#escaped = false;
    else if (c === 0x5c) this.#escaped = true;
    else if (c === 0x22) {
      const raw = this.#decode(this.#collect(chunk, i + 1), at);
      try {
        this.#key = JSON.parse(raw);
      } catch (error) {
        if (!(error instanceof SyntaxError)) throw error;
        this.#fail(at, `malformed key ${raw}`);
      }
      this.state = "afterKey";
    } else if (c < 0x20) this.#fail(at, "control character inside a key");
  }

  #openValue(c: number, i: number): void {
    const at = this.base + i;
    if (c !== 0x7b) {
      this.#fail(
        at,
        `expected '{' to open the record of ${JSON.stringify(this.#key)}, found ${describe(c)}`,
      );
    }
    this.state = "value";
    this.#depth = 1;
    this.#inString = false;
    this.#escaped = false;
    this.partStart = i;
    this.#valueOffset = at;
    this.#valueLine = this.#line;
    this.#valueColumn = at - this.#lineStart + 1;
  }

  #fail(at: number, what: string): never {
    throw new JsonRecordsError(
      `${this.#name}: malformed JSON at line ${this.#line}, column ${
        at - this.#lineStart + 1
      } (byte ${at}): ${what}`,
    );
  }

  /** The key or record that ends before `end` in `chunk`, with what came in earlier chunks. */
  #collect(chunk: Uint8Array, end: number): Uint8Array {
    this.parts.push(chunk.subarray(this.partStart, end));
    const parts = this.parts;
    this.parts = [];
    if (parts.length === 1) return parts[0];
    const all = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
    let o = 0;
    for (const p of parts) {
      all.set(p, o);
      o += p.length;
    }
    return all;
  }

  #decode(bytes: Uint8Array, at: number): string {
    try {
      return this.#decoder.decode(bytes);
    } catch (error) {
      // A fatal TextDecoder throws a TypeError for bytes that are not UTF-8.
      if (!(error instanceof TypeError)) throw error;
      return this.#fail(at, "invalid UTF-8");
    }
  }
}
