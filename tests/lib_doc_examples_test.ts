/**
 * Every `@example` in the JSDoc of lib/ type-checks (`deno check --doc lib/`), and those of the
 * engine's folders run (`deno test --doc`), so the examples a reader copies stay true to the
 * code.
 */
import { fileURLToPath } from "node:url";
import { assertEquals } from "./fixtures/assert.ts";

Deno.test("deno check --doc lib/: every JSDoc example type-checks", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["check", "--doc", "--quiet", "lib/"],
    cwd: fileURLToPath(new URL("../", import.meta.url)),
    env: { NO_COLOR: "1" },
  }).output();
  const text = new TextDecoder().decode(out.stderr);
  assertEquals(out.code, 0, text);
});

/** The folders whose examples run as doc tests (each asserts its result in a temp dir). */
const RUN_EXAMPLES = [
  "lib/base",
  "lib/cli",
  "lib/dag",
  "lib/executor",
  "lib/package",
  "lib/report",
  "lib/store",
];

Deno.test("deno test --doc: the examples of the engine's folders run and pass", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["test", "--doc", "--quiet", "-A", "--unstable-kv", "--unstable-cron", ...RUN_EXAMPLES],
    cwd: fileURLToPath(new URL("../", import.meta.url)),
    env: { NO_COLOR: "1" },
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assertEquals(out.code, 0, text);
});
