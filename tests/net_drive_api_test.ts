import { assertEquals, assertThrows } from "./fixtures/assert.ts";
import { DriveApi, DriveApiKeyError, driveFileId, driveRefusal } from "../lib/net/drive_api.ts";

Deno.test("Drive links name their file id; other URLs do not", () => {
  assertEquals(driveFileId("https://drive.google.com/uc?id=1aB-_c"), "1aB-_c");
  assertEquals(driveFileId("https://drive.google.com/file/d/1aBc/view?usp=sharing"), "1aBc");
  assertEquals(driveFileId("https://drive.google.com/open?id=1aBc"), "1aBc");
  assertEquals(driveFileId("https://drive.usercontent.google.com/download?id=1aBc"), "1aBc");
  assertEquals(driveFileId("https://example.org/uc?id=1aBc"), null);
  assertEquals(driveFileId("https://drive.google.com/uc?id=bad%20id"), null);
  assertEquals(driveFileId("not a url"), null);
});

Deno.test("with a key, Drive links go to the API's media URL and only those requests carry the key", () => {
  const api = new DriveApi({ key: "k-123", baseUrl: "http://127.0.0.1:9/drive/v3/" });
  const url = api.route("https://drive.google.com/uc?id=1abc");
  assertEquals(url, "http://127.0.0.1:9/drive/v3/files/1abc?alt=media");
  assertEquals(api.headersFor(url), { "x-goog-api-key": "k-123" });
  assertEquals(api.route("https://mirror.example/a.png"), "https://mirror.example/a.png");
  assertEquals(api.headersFor("https://mirror.example/a.png"), undefined);
  // Printing or serializing the API never shows the key.
  assertEquals(JSON.stringify({ api }), '{"api":{"baseUrl":"http://127.0.0.1:9/drive/v3"}}');
  assertEquals(Deno.inspect(api).includes("k-123"), false);
});

Deno.test("the key comes from the named environment variable; an unset one is named, never guessed", () => {
  const env = (vars: Record<string, string>) => ({ get: (name: string) => vars[name] });
  assertEquals(DriveApi.fromConfig({ google_api_key_env: null }, env({})), null);
  const api = DriveApi.fromConfig({ google_api_key_env: "DRIVE_KEY" }, env({ DRIVE_KEY: "k" }));
  assertEquals(api?.baseUrl, "https://www.googleapis.com/drive/v3");
  const e = assertThrows(
    () => DriveApi.fromConfig({ google_api_key_env: "DRIVE_KEY" }, env({})),
    "names the environment variable DRIVE_KEY, but it is not set",
  );
  assertEquals(e instanceof DriveApiKeyError, true);
  assertThrows(
    () => DriveApi.fromConfig({ google_api_key_env: "DRIVE_KEY" }, env({ DRIVE_KEY: " " })),
    "but it is empty",
  );
});

Deno.test("Drive API error replies: quota and rate limits are back-offs, the rest are failures", () => {
  const reply = (reason: string, code = 403) =>
    JSON.stringify({ error: { errors: [{ domain: "global", reason, message: "…" }], code } });
  assertEquals(driveRefusal(403, reply("downloadQuotaExceeded"))?.quota, true);
  assertEquals(driveRefusal(403, reply("userRateLimitExceeded"))?.quota, true);
  assertEquals(driveRefusal(429, reply("rateLimitExceeded", 429))?.quota, true);
  assertEquals(
    driveRefusal(403, JSON.stringify({ error: { status: "RESOURCE_EXHAUSTED", code: 403 } }))
      ?.quota,
    true,
  );
  const notFound = driveRefusal(404, reply("notFound", 404))!;
  assertEquals([notFound.quota, notFound.text], [
    false,
    "no such file, or it is not shared publicly",
  ]);
  assertEquals(driveRefusal(400, reply("keyInvalid", 400))?.quota, false);
  assertEquals(driveRefusal(403, "<html>quota</html>"), null);
});
