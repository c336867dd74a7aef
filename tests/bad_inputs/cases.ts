/**
 * The bad-input corpus: one row per input a user could hand the pipeline by mistake, with the
 * exit code it must give and the words its message must contain. Rows whose input is accepted
 * by design (a BOM, CRLF line ends, quoted commas) expect exit 0 and check what was parsed.
 *
 * @module
 */
import { join } from "node:path";
import type { Ran } from "../fixtures/project.ts";
import {
  HTML_PAGE,
  nanDecoder,
  pngBomb,
  rank3Encoder,
  sinDecoder,
  solidPng,
  truncateCopy,
} from "./generate.ts";

/** Which shared project a row runs in (see bad_inputs_test.ts). */
export type Group = "config" | "spec" | "labels" | "images" | "onnx";

/** What a row's input builder gets from its group. */
export interface Bench {
  /** Scratch directory of the group. */
  dir: string;
  /** Writes a file under `dir` and returns its absolute path. */
  write(name: string, data: string | Uint8Array): Promise<string>;
  /** `spec`/`labels`: the good FFHQ spec (parsed) the mirror serves. */
  spec: Record<string, Record<string, unknown>>;
  /** `labels`: the good labels CSV. */
  labelsCsv: string;
  /** `images`: origin of the test's HTTP server (`/good0.png`, `/good1.png`, `/page.png`). */
  origin: string;
  /** `onnx`: the good demo VAE. */
  vae: { encoder: string; decoder: string };
}

/** One row of the corpus. */
export interface BadInputCase {
  name: string;
  group: Group;
  /** Writes the input and returns the config fields that point at it (merged over the group's). */
  input(bench: Bench): Promise<Record<string, unknown>>;
  /** The `run` target. */
  target: string;
  /** Expected exit code: 0 accepted, 1 an item or task failed, 2 bad invocation or config. */
  code: 0 | 1 | 2;
  /** Words the output (stderr and `--json` events) must contain. */
  words: string[];
  /** For accepted rows: checks on what was parsed. */
  accepted?(ran: Ran): void;
  /**
   * The corrected input (config fields over the group's), for rows past the first stage: a
   * rerun with it must not redo what had completed. Default: the group's own config.
   */
  fix?(bench: Bench): Promise<Record<string, unknown>>;
}

const clone = <T>(v: T): T => structuredClone(v);

/** A spec file holding the good spec with item "1"'s `image` part changed. */
function specWith(
  b: Bench,
  name: string,
  change: (image: Record<string, unknown>) => void,
): Promise<string> {
  const spec = clone(b.spec);
  change(spec["1"].image as Record<string, unknown>);
  return b.write(name, JSON.stringify(spec, null, 1));
}

const specPath = (path: string) => ({ dataset: { kind: "ffhq", spec: { path } } });
const labelsPath = (path: string, extra: Record<string, unknown> = {}) => ({
  labels: { source: { path }, max_missing: 0, ...extra },
});

/** The labels CSV with line `n` (1-based, header is 1) replaced. */
function labelsLine(b: Bench, n: number, edit: (fields: string[]) => string[]): string {
  const lines = b.labelsCsv.trimEnd().split("\n");
  lines[n - 1] = edit(lines[n - 1].split(",")).join(",");
  return lines.join("\n") + "\n";
}

/** Split sizes logged by label-split (`split female: 2 images`). */
export function loggedSplits(ran: Ran): Record<string, number> {
  const out: Record<string, number> = {};
  for (const e of ran.events) {
    const m = e.event === "log" && /^split (.+): (\d+) images$/.exec(String(e.message));
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

/** Label-split counts of the good labels CSV per gender, for the accepted rows. */
export function genderCounts(csv: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of csv.trim().split("\n").slice(1)) {
    const g = line.split(",")[3];
    out[g] = (out[g] ?? 0) + 1;
  }
  return out;
}

let expectedGenders: Record<string, number> = {};

/** A folder with two good images and one bad file named `bad`. */
async function folderWith(b: Bench, folder: string, bad: string, bytes: Uint8Array) {
  const dir = join(b.dir, folder);
  await Deno.mkdir(dir, { recursive: true });
  await b.write(join(folder, "good0.png"), await solidPng(16, 40));
  await b.write(join(folder, "good1.png"), await solidPng(16, 200));
  await b.write(join(folder, bad), bytes);
  return { dataset: { kind: "folder", path: dir } };
}

/** The fix of a folder row: the bad file removed. */
function without(folder: string, bad: string) {
  return async (b: Bench) => {
    await Deno.remove(join(b.dir, folder, bad));
    return { dataset: { kind: "folder", path: join(b.dir, folder) } };
  };
}

/** The corpus. */
export const CASES: BadInputCase[] = [
  // Config: refused before anything runs, naming the field.
  {
    name: "config with an unknown field",
    group: "config",
    input: () => Promise.resolve({ optimize: { learning_rate: 0.1 } }),
    target: "fetch-json",
    code: 2,
    words: ["invalid config", "unknown field in optimize: learning_rate"],
  },
  {
    name: "config with a wrong type",
    group: "config",
    input: () => Promise.resolve({ preprocess: { size: "64" } }),
    target: "fetch-json",
    code: 2,
    words: ["preprocess.size", "expected number", 'found "64"'],
  },
  {
    name: "config with a negative learning rate",
    group: "config",
    input: () => Promise.resolve({ optimize: { lr: -0.1 } }),
    target: "fetch-json",
    code: 2,
    words: ["optimize.lr", ">0", "found -0.1"],
  },

  // Dataset spec: fetch-json fails, naming the file, the line, the item and the field.
  {
    name: "spec truncated",
    group: "spec",
    input: async (b) => {
      const text = JSON.stringify(b.spec, null, 1);
      return specPath(await b.write("truncated.json", text.slice(0, Math.floor(text.length / 2))));
    },
    target: "fetch-json",
    code: 1,
    words: ["truncated.json", "malformed JSON", "end of file"],
  },
  {
    name: "spec that is not JSON",
    group: "spec",
    input: async (b) => specPath(await b.write("page.json", HTML_PAGE)),
    target: "fetch-json",
    code: 1,
    words: ["page.json", "is not JSON: it starts with", "(an HTML page)"],
  },
  {
    name: "spec with duplicate ids",
    group: "spec",
    input: async (b) => {
      const lines = JSON.stringify(b.spec, null, 1).split("\n");
      // A second top-level "0" entry: JSON.parse would silently keep the last one.
      const text = [lines[0], ` "0": ${JSON.stringify(b.spec["0"])},`, ...lines.slice(1)]
        .join("\n");
      return specPath(await b.write("duplicate.json", text));
    },
    target: "fetch-json",
    code: 1,
    words: ["duplicate.json", "duplicate item id", '"0"', "first at line 2"],
  },
  {
    name: "spec with a negative size",
    group: "spec",
    input: async (b) => specPath(await specWith(b, "negative.json", (img) => (img.file_size = -5))),
    target: "fetch-json",
    code: 1,
    words: ["negative.json", 'item "1"', "image.file_size", "non-negative integer", "-5"],
  },
  {
    name: "spec with a malformed MD5",
    group: "spec",
    input: async (b) => specPath(await specWith(b, "md5.json", (img) => (img.file_md5 = "abc123"))),
    target: "fetch-json",
    code: 1,
    words: ["md5.json", 'item "1"', "image.file_md5", "32 hex digits", "abc123"],
  },
  {
    name: "spec with a file_path containing ..",
    group: "spec",
    input: async (b) =>
      specPath(await specWith(b, "dotdot.json", (img) => (img.file_path = "../../etc/x.png"))),
    target: "fetch-json",
    code: 1,
    words: ["dotdot.json", 'item "1"', "image.file_path", "..", "../../etc/x.png"],
  },
  {
    name: "spec with an absolute file_path",
    group: "spec",
    input: async (b) =>
      specPath(await specWith(b, "absolute.json", (img) => (img.file_path = "/etc/x.png"))),
    target: "fetch-json",
    code: 1,
    words: ["absolute.json", 'item "1"', "image.file_path", "relative path", "/etc/x.png"],
  },
  {
    name: "spec with a file:// URL",
    group: "spec",
    input: async (b) =>
      specPath(await specWith(b, "fileurl.json", (img) => (img.file_url = "file:///etc/passwd"))),
    target: "fetch-json",
    code: 1,
    words: ["fileurl.json", 'item "1"', "image.file_url", "http(s) URL", "file:///etc/passwd"],
  },

  // Labels CSV: label-split fails naming file, line and column; three quirks are accepted.
  {
    name: "labels with a wrong header",
    group: "labels",
    input: async (b) =>
      labelsPath(
        await b.write(
          "header.csv",
          labelsLine(b, 1, (f) => f.map((c) => c === "gender" ? "sex" : c)),
        ),
      ),
    target: "label-split",
    code: 1,
    words: ["header.csv:1", "wrong header", "gender", "sex"],
  },
  {
    name: "labels with a byte-order mark (accepted)",
    group: "labels",
    input: async (b) => {
      expectedGenders = genderCounts(b.labelsCsv);
      return labelsPath(await b.write("bom.csv", "\uFEFF" + b.labelsCsv));
    },
    target: "label-split",
    code: 0,
    words: [],
    accepted: (ran) => assertSplits(loggedSplits(ran), expectedGenders),
  },
  {
    name: "labels with CRLF line ends (accepted)",
    group: "labels",
    input: async (b) => {
      expectedGenders = genderCounts(b.labelsCsv);
      return labelsPath(await b.write("crlf.csv", b.labelsCsv.replaceAll("\n", "\r\n")));
    },
    target: "label-split",
    code: 0,
    words: [],
    accepted: (ran) => assertSplits(loggedSplits(ran), expectedGenders),
  },
  {
    name: "labels with a quoted comma (accepted)",
    group: "labels",
    input: async (b) => {
      const csv = labelsLine(b, 3, (f) => [...f.slice(0, 10), '"Reading, Glasses"']);
      const others: Record<string, number> = {};
      for (const line of csv.trim().split("\n").slice(1)) {
        const g = line.split(",").at(-1)!;
        if (!g.startsWith('"') && !g.endsWith('"')) others[g] = (others[g] ?? 0) + 1;
      }
      expectedGenders = { ...others, "Reading, Glasses": 1 };
      return labelsPath(await b.write("quoted.csv", csv), { split_by: ["glasses"] });
    },
    target: "label-split",
    code: 0,
    words: ["Reading, Glasses"],
    accepted: (ran) => assertSplits(loggedSplits(ran), expectedGenders),
  },
  {
    name: "labels with a non-numeric confidence",
    group: "labels",
    input: async (b) =>
      labelsPath(
        await b.write(
          "confidence.csv",
          labelsLine(b, 3, (f) => [...f.slice(0, 4), "high", ...f.slice(5)]),
        ),
      ),
    target: "label-split",
    code: 1,
    words: ["confidence.csv:3", "gender_confidence", "a number in [0, 1]", '"high"'],
  },
  {
    name: "labels with a duplicate id",
    group: "labels",
    input: async (b) => {
      const lines = b.labelsCsv.trimEnd().split("\n");
      return labelsPath(await b.write("dupes.csv", [...lines, lines[2]].join("\n") + "\n"));
    },
    target: "label-split",
    code: 1,
    words: ["dupes.csv", "duplicate image_number", "first at line 3"],
  },

  // Images: the bad item fails with its name and reason; the others complete.
  {
    name: "image truncated",
    group: "images",
    input: async (b) => {
      const png = await solidPng(64, 90);
      return folderWith(b, "truncated", "cut.png", png.subarray(0, png.length >> 1));
    },
    target: "preprocess",
    code: 1,
    words: ["image cut (cut.png)", "cannot decode image"],
    fix: without("truncated", "cut.png"),
  },
  {
    name: "image of zero bytes",
    group: "images",
    input: (b) => folderWith(b, "empty", "empty.png", new Uint8Array()),
    target: "preprocess",
    code: 1,
    words: ["empty.png is empty (0 bytes)"],
    fix: without("empty", "empty.png"),
  },
  {
    name: "PNG bomb (50000×50000 declared)",
    group: "images",
    input: (b) => folderWith(b, "bomb", "bomb.png", pngBomb(50_000)),
    target: "preprocess",
    code: 1,
    words: ["image bomb (bomb.png)", "exceeds pixel limit"],
    fix: without("bomb", "bomb.png"),
  },
  {
    name: "HTML served as PNG",
    group: "images",
    input: async (b) => {
      const list = ["good0.png", "good1.png", "page.png"].map((f) => `${b.origin}/${f}`);
      return {
        dataset: { kind: "urls", list: { path: await b.write("list.txt", list.join("\n")) } },
      };
    },
    target: "preprocess",
    code: 1,
    words: ["/page.png", "received an HTML page", "instead of the file"],
    fix: async (b) => {
      const list = ["good0.png", "good1.png"].map((f) => `${b.origin}/${f}`);
      return {
        dataset: { kind: "urls", list: { path: await b.write("fixed.txt", list.join("\n")) } },
      };
    },
  },

  // ONNX models: the model file and the problem are named; upstream results stay cached.
  {
    name: "encoder file truncated",
    group: "onnx",
    input: async (b) => {
      const path = join(b.dir, "truncated_encoder.onnx");
      await truncateCopy(b.vae.encoder, path, 0.5);
      return { model: { encoder: { path } } };
    },
    target: "encode",
    code: 1,
    words: ["model.encoder", "truncated_encoder.onnx", "not an ONNX model"],
  },
  {
    name: "encoder with the wrong input rank",
    group: "onnx",
    input: async (b) => {
      const path = join(b.dir, "rank3_encoder.onnx");
      await rank3Encoder(path);
      return { model: { encoder: { path } } };
    },
    target: "encode",
    code: 1,
    words: ["model.encoder", "rank3_encoder.onnx", "cannot run on input", "[batch, 3, pixels]"],
  },
  {
    name: "decoder with an op the gradient graph does not support",
    group: "onnx",
    input: async (b) => {
      const path = join(b.dir, "sin_decoder.onnx");
      await sinDecoder(b.vae.decoder, path);
      return { model: { decoder: { path } } };
    },
    target: "optimize",
    code: 1,
    words: ["model.decoder", "sin_decoder.onnx", 'no gradient rule for op type "Sin"'],
  },
  {
    name: "decoder that produces NaN",
    group: "onnx",
    input: async (b) => {
      const path = join(b.dir, "nan_decoder.onnx");
      await nanDecoder(b.vae.decoder, path);
      return { model: { decoder: { path } } };
    },
    target: "optimize",
    code: 1,
    words: ["img0", "loss is NaN at step 0"],
  },
];

function assertSplits(found: Record<string, number>, expected: Record<string, number>): void {
  const a = JSON.stringify(Object.entries(found).sort());
  const e = JSON.stringify(Object.entries(expected).sort());
  if (a !== e) throw new Error(`splits: expected ${e}, found ${a}`);
}
