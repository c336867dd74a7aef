/**
 * The `@example` blocks of lib/net, lib/dataset and lib/format run as doc tests: each asserts
 * its own result, so an example a reader copies is one that works.
 */
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { assertEquals } from "./fixtures/assert.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const FOLDERS = ["lib/net", "lib/dataset", "lib/format"];

Deno.test("deno test --doc lib/net lib/dataset lib/format: every example runs and holds", async () => {
  let blocks = 0;
  for (const folder of FOLDERS) {
    for await (const entry of Deno.readDir(join(ROOT, folder))) {
      if (!entry.name.endsWith(".ts")) continue;
      const text = await Deno.readTextFile(join(ROOT, folder, entry.name));
      blocks += text.match(/^\s*\* ```ts$/gm)?.length ?? 0;
    }
  }
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["test", "--doc", "-A", "--unstable-kv", ...FOLDERS],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assertEquals(out.code, 0, text);
  // Each example block ran as a test of its own and passed: none was skipped or ignored.
  const passed = text.match(/\.ts#\d+-\d+\.ts \.\.\. ok/g)?.length ?? 0;
  assertEquals(passed, blocks, text);
});
