/**
 * Reading text files line by line with the byte offset of each line, and reading one line back
 * by its offset: how a file of JSON lines serves as an index that is never held in memory.
 *
 * @module
 */

/** One line of a file: its byte offset and length (without the line break) and its text. */
export interface Line {
  offset: number;
  length: number;
  text: string;
}

/**
 * The lines of a file in order (a last line without a line break included).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/a.jsonl`, '{"a":"é"}\n{"b":2}\n');
 * const lines = await Array.fromAsync(readLines(`${dir}/a.jsonl`));
 * assert.deepEqual(lines, [
 *   { offset: 0, length: 10, text: '{"a":"é"}' },
 *   { offset: 11, length: 7, text: '{"b":2}' },
 * ]);
 * const file = await Deno.open(`${dir}/a.jsonl`);
 * assert.equal(await readSpan(file, 11, 7), '{"b":2}');
 * file.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function* readLines(path: string): AsyncGenerator<Line> {
  const decoder = new TextDecoder();
  const file = await Deno.open(path, { read: true });
  try {
    let rest = new Uint8Array(0);
    let restAt = 0;
    const buffer = new Uint8Array(1 << 20);
    while (true) {
      const n = await file.read(buffer);
      if (n === null) break;
      const chunk = rest.length ? concat(rest, buffer.subarray(0, n)) : buffer.subarray(0, n);
      let start = 0;
      for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, start)) {
        const bytes = chunk.subarray(start, nl);
        yield { offset: restAt + start, length: bytes.length, text: decoder.decode(bytes) };
        start = nl + 1;
      }
      restAt += start;
      rest = chunk.slice(start);
    }
    if (rest.length) yield { offset: restAt, length: rest.length, text: decoder.decode(rest) };
  } finally {
    file.close();
  }
}

/** Reads `length` bytes at `offset` of an open file as text (all of them, or it throws). */
export async function readSpan(file: Deno.FsFile, offset: number, length: number): Promise<string> {
  const bytes = await readAt(file, offset, length);
  if (bytes.length < length) throw new Error(`the file ends before byte ${offset + length}`);
  return new TextDecoder().decode(bytes);
}

/** Reads up to `length` bytes at `offset` of an open file: fewer where the file ends. */
export async function readAt(
  file: Deno.FsFile,
  offset: number,
  length: number,
): Promise<Uint8Array> {
  const bytes = new Uint8Array(length);
  await file.seek(offset, Deno.SeekMode.Start);
  let n = 0;
  while (n < length) {
    const got = await file.read(bytes.subarray(n));
    if (got === null) break;
    n += got;
  }
  return bytes.subarray(0, n);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
