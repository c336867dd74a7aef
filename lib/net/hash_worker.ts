/**
 * Worker side of {@link HashPool}: keeps one MD5 + SHA-256 state per download session and
 * updates it with the blocks the downloader has already written to disk.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { createHash, type Hash } from "node:crypto";

interface Session {
  md5: Hash;
  sha256: Hash;
}

type Message =
  | { op: "begin"; id: number; prefixPath?: string; prefixBytes?: number }
  | { op: "update"; id: number; bytes: Uint8Array }
  | { op: "digest"; id: number }
  | { op: "drop"; id: number };

const sessions = new Map<number, Session>();
const failed = new Map<number, string>();

self.onmessage = (event: MessageEvent<Message>) => {
  const m = event.data;
  switch (m.op) {
    case "begin": {
      const s = { md5: createHash("md5"), sha256: createHash("sha256") };
      sessions.set(m.id, s);
      if (m.prefixPath && m.prefixBytes) {
        try {
          using file = Deno.openSync(m.prefixPath, { read: true });
          const buf = new Uint8Array(1 << 20);
          let left = m.prefixBytes;
          while (left > 0) {
            const n = file.readSync(buf.subarray(0, Math.min(buf.length, left)));
            if (n === null) {
              throw new Error(`${m.prefixPath} is shorter than ${m.prefixBytes} bytes`);
            }
            s.md5.update(buf.subarray(0, n));
            s.sha256.update(buf.subarray(0, n));
            left -= n;
          }
        } catch (error) {
          failed.set(m.id, (error as Error).message);
        }
      }
      break;
    }
    case "update": {
      const s = sessions.get(m.id);
      if (s) {
        s.md5.update(m.bytes);
        s.sha256.update(m.bytes);
      }
      break;
    }
    case "digest": {
      const s = sessions.get(m.id);
      sessions.delete(m.id);
      const error = failed.get(m.id) ?? (s ? undefined : `unknown hash session ${m.id}`);
      failed.delete(m.id);
      if (error || !s) self.postMessage({ id: m.id, error });
      else self.postMessage({ id: m.id, md5: s.md5.digest("hex"), sha256: s.sha256.digest("hex") });
      break;
    }
    case "drop":
      sessions.delete(m.id);
      failed.delete(m.id);
      break;
  }
};
