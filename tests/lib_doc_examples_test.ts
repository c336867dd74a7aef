/**
 * Every `@example` in the JSDoc of lib/ type-checks (`deno check --doc lib/`), so the examples
 * a reader copies stay true to the code.
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
