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
 * using file = await Deno.open("ffhq-dataset-v2.json");
 * for await (const { key, value } of jsonRecords(file.readable, "ffhq-dataset-v2.json")) {
 *   console.log(key, value);
 * }
 * ```
 */
export async function* jsonRecords(
  source: AsyncIterable<Uint8Array>,
  name: string,
): AsyncGenerator<JsonRecord> {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  let state = "start" as State;
  let entries = 0;
  let line = 1;
  let lineStart = 0; // absolute offset of the current line's first byte
  let base = 0; // absolute offset of chunk[0]
  let parts: Uint8Array[] = [];
  let partStart = 0;
  let depth = 0;
  let inString = false;
  let escaped = false;
  let key = "";
  let keyLine = 0;
  let valueOffset = 0;
  let valueLine = 0;
  let valueColumn = 0;

  const fail = (at: number, what: string): never => {
    throw new JsonRecordsError(
      `${name}: malformed JSON at line ${line}, column ${at - lineStart + 1} (byte ${at}): ${what}`,
    );
  };
  const collect = (chunk: Uint8Array, end: number): Uint8Array => {
    parts.push(chunk.subarray(partStart, end));
    const n = parts.reduce((s, p) => s + p.length, 0);
    const all = parts.length === 1 ? parts[0] : new Uint8Array(n);
    if (parts.length > 1) {
      let o = 0;
      for (const p of parts) {
        all.set(p, o);
        o += p.length;
      }
    }
    parts = [];
    return all;
  };
  const decode = (bytes: Uint8Array, at: number): string => {
    try {
      return decoder.decode(bytes);
    } catch {
      return fail(at, "invalid UTF-8");
    }
  };

  for await (const chunk of source) {
    partStart = 0;
    const n = chunk.length;
    for (let i = 0; i < n; i++) {
      if (state === "value") {
        // Inside a record: a tight loop that only tracks strings and nesting, since nearly all
        // bytes of the file are here.
        let j = i;
        for (; j < n; j++) {
          const d = chunk[j];
          if (inString) {
            if (escaped) escaped = false;
            else if (d === 0x5c) escaped = true;
            else if (d === 0x22) inString = false;
          } else if (d === 0x22) inString = true;
          else if (d === 0x7b || d === 0x5b) depth++;
          else if (d === 0x7d || d === 0x5d) {
            if (--depth === 0) break;
          } else if (d === 0x0a) {
            line++;
            lineStart = base + j + 1;
          }
        }
        if (j === n) break;
        i = j;
        const text = decode(collect(chunk, i + 1), valueOffset);
        let value: unknown;
        try {
          value = JSON.parse(text);
        } catch (error) {
          const msg = (error as Error).message;
          const pos = Number(/position (\d+)/.exec(msg)?.[1]);
          let where = "";
          if (Number.isFinite(pos)) {
            // Positions count UTF-16 units of the record text; the spec is ASCII.
            const before = text.slice(0, pos);
            const nl = before.lastIndexOf("\n");
            const l = valueLine + (before.match(/\n/g)?.length ?? 0);
            const col = nl >= 0 ? pos - nl : valueColumn + pos;
            where = ` at line ${l}, column ${col} (byte ${valueOffset + pos})`;
          }
          throw new JsonRecordsError(
            `${name}: malformed JSON in the record of ${JSON.stringify(key)}${where}: ${msg}`,
          );
        }
        entries++;
        yield { key, value, line: keyLine };
        state = "afterValue";
        continue;
      }
      const c = chunk[i];
      if (c === 0x0a) {
        line++;
        lineStart = base + i + 1;
      }
      switch (state) {
        case "start":
          if (WS[c]) break;
          if (c !== 0x7b) {
            fail(base + i, `expected '{' to open the top-level object, found ${describe(c)}`);
          }
          state = "beforeKey";
          break;
        case "beforeKey":
          if (WS[c]) break;
          if (c === 0x7d && entries === 0) {
            state = "end";
            break;
          }
          if (c !== 0x22) {
            fail(base + i, `expected '"' to start an entry key, found ${describe(c)}`);
          }
          state = "key";
          partStart = i;
          keyLine = line;
          escaped = false;
          break;
        case "key":
          if (escaped) escaped = false;
          else if (c === 0x5c) escaped = true;
          else if (c === 0x22) {
            const raw = decode(collect(chunk, i + 1), base + i);
            try {
              key = JSON.parse(raw);
            } catch {
              fail(base + i, `malformed key ${raw}`);
            }
            state = "afterKey";
          } else if (c < 0x20) fail(base + i, "control character inside a key");
          break;
        case "afterKey":
          if (WS[c]) break;
          if (c !== 0x3a) {
            fail(base + i, `expected ':' after key ${JSON.stringify(key)}, found ${describe(c)}`);
          }
          state = "beforeValue";
          break;
        case "beforeValue":
          if (WS[c]) break;
          if (c !== 0x7b) {
            fail(
              base + i,
              `expected '{' to open the record of ${JSON.stringify(key)}, found ${describe(c)}`,
            );
          }
          state = "value";
          depth = 1;
          inString = false;
          escaped = false;
          partStart = i;
          valueOffset = base + i;
          valueLine = line;
          valueColumn = base + i - lineStart + 1;
          break;
        case "afterValue":
          if (WS[c]) break;
          if (c === 0x2c) state = "beforeKey";
          else if (c === 0x7d) state = "end";
          else {fail(
              base + i,
              `expected ',' or '}' after the record of ${JSON.stringify(key)}, found ${
                describe(c)
              }`,
            );}
          break;
        case "end":
          if (!WS[c]) fail(base + i, `unexpected ${describe(c)} after the top-level object`);
          break;
      }
    }
    if (state === "key" || state === "value") parts.push(chunk.subarray(partStart));
    base += n;
  }
  if (state !== "end") {
    const inside = state === "value"
      ? ` inside the record of ${JSON.stringify(key)} (line ${keyLine})`
      : "";
    fail(base, `unexpected end of file${inside}`);
  }
}
