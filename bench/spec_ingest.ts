/**
 * Spec ingest: writes a 70,000-record `ffhq-dataset-v2.json` of the real schema to a temp dir,
 * then ingests it with `ingestFfhqSpec` in a child process and reports wall time and peak RSS
 * (VmHWM), side by side with reading the same file whole (Deno `JSON.parse` and Python's
 * `json.load`, which is what NVIDIA's download script does).
 *
 *   deno run -A bench/spec_ingest.ts [--count 70000]
 *
 * @module
 */

import { ffhqRecord, formatSpecEntry } from "../tests/fixtures/ffhq_source_text.ts";
import { seededRandom } from "../lib/base/random.ts";
import { outputUnlessAbsent } from "./absent.ts";

const i = Deno.args.indexOf("--count");
const count = i >= 0 ? Number(Deno.args[i + 1]) : 70_000;
const PYTHON = "/usr/bin/python3";

const dir = await Deno.makeTempDir({ prefix: "lf_bench_spec_" });
const specPath = `${dir}/ffhq-dataset-v2.json`;
try {
  const t0 = performance.now();
  const rnd = seededRandom(42);
  const hex = (n: number) =>
    Array.from({ length: n }, () => Math.floor(rnd() * 16).toString(16)).join("");
  const driveId = () => `1${hex(32)}`;
  {
    using file = await Deno.open(specPath, { write: true, create: true, truncate: true });
    const enc = new TextEncoder();
    let buf: string[] = ["{"];
    for (let id = 0; id < count; id++) {
      const facts = {
        image: {
          fileUrl: `https://drive.google.com/uc?id=${driveId()}`,
          size: 1_000_000 + Math.floor(rnd() * 1_000_000),
          md5: hex(32),
          pixelMd5: hex(32),
          width: 1024,
          height: 1024,
        },
        thumbnail: {
          fileUrl: `https://drive.google.com/uc?id=${driveId()}`,
          size: 20_000 + Math.floor(rnd() * 20_000),
          md5: hex(32),
          pixelMd5: hex(32),
          width: 128,
          height: 128,
        },
        in_the_wild: {
          fileUrl: `https://drive.google.com/uc?id=${driveId()}`,
          size: 2_000_000 + Math.floor(rnd() * 9_000_000),
          md5: hex(32),
          pixelMd5: hex(32),
          width: 1000 + Math.floor(rnd() * 3000),
          height: 800 + Math.floor(rnd() * 2000),
        },
      };
      buf.push(formatSpecEntry(String(id), ffhqRecord(id, count, facts, 1)));
      buf.push(id + 1 < count ? ", " : "}");
      if (buf.length > 2000) {
        await file.write(enc.encode(buf.join("")));
        buf = [];
      }
    }
    await file.write(enc.encode(buf.join("")));
  }
  const size = (await Deno.stat(specPath)).size;
  console.log(
    `generated ${count} records, ${(size / 1e6).toFixed(1)} MB in ${
      ((performance.now() - t0) / 1000).toFixed(1)
    } s (real file: 70,000 records, 267.8 MB)\n`,
  );

  const lib = new URL("../lib/dataset/ffhq_spec.ts", import.meta.url).href;
  const hwm = `Number(/VmHWM:\\s+(\\d+)/.exec(Deno.readTextFileSync("/proc/self/status"))[1])`;
  const streaming = `import { ingestFfhqSpec } from ${JSON.stringify(lib)};
const t0 = performance.now();
const index = await ingestFfhqSpec(${JSON.stringify(specPath)}, { component: "image" });
const ms = performance.now() - t0;
console.log(JSON.stringify({ items: index.items.length, ms, hwmKiB: ${hwm} }));`;
  const naive = `const t0 = performance.now();
const spec = JSON.parse(await Deno.readTextFile(${JSON.stringify(specPath)}));
const items = Object.keys(spec).length;
const ms = performance.now() - t0;
console.log(JSON.stringify({ items, ms, hwmKiB: ${hwm} }));`;

  const runDeno = async (code: string, name: string) => {
    const script = `${dir}/${name}.ts`;
    await Deno.writeTextFile(script, code);
    const t = performance.now();
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--no-config", script],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const wall = performance.now() - t;
    if (!out.success) throw new Error(`${name} failed: ${new TextDecoder().decode(out.stderr)}`);
    return { ...JSON.parse(new TextDecoder().decode(out.stdout)), wall };
  };
  const rows: Array<[string, { items: number; ms: number; hwmKiB: number; wall: number }]> = [];
  rows.push(["latentforge ingestFfhqSpec (streaming)", await runDeno(streaming, "streaming")]);
  rows.push(["Deno JSON.parse of the whole file", await runDeno(naive, "naive")]);
  const t = performance.now();
  const out = await outputUnlessAbsent(
    new Deno.Command(PYTHON, {
      args: [
        "-c",
        `import json, time, resource, sys
t = time.perf_counter()
spec = json.load(open(sys.argv[1]))
ms = (time.perf_counter() - t) * 1000
print(json.dumps({"items": len(spec), "ms": ms, "hwmKiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))`,
        specPath,
      ],
      stdout: "piped",
      stderr: "piped",
    }),
  );
  if (!out) console.warn(`${PYTHON} not available: Python reference skipped`);
  else if (out.success) {
    rows.push(["Python json.load (NVIDIA's script)", {
      ...JSON.parse(new TextDecoder().decode(out.stdout)),
      wall: performance.now() - t,
    }]);
  }
  for (const [name, r] of rows) {
    console.log(
      `${name.padEnd(42)} ${String(r.items).padStart(6)} items  parse ${
        (r.ms / 1000).toFixed(2).padStart(6)
      } s  process ${(r.wall / 1000).toFixed(2).padStart(6)} s  peak RSS ${
        (r.hwmKiB / 1024).toFixed(0).padStart(5)
      } MB`,
    );
  }
  const ours = rows[0][1];
  console.log(
    `\npeak RSS of the streaming ingest: ${(ours.hwmKiB / 1024).toFixed(0)} MB (target ≤ 800 MB): ${
      ours.hwmKiB / 1024 <= 800 ? "met" : "NOT met"
    }`,
  );
} finally {
  await Deno.remove(dir, { recursive: true });
}
