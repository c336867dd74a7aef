import { ObjectStore } from "./lib/store/objects.ts";
const out = await new Deno.Command(Deno.execPath(), { args: ["run", "-A", "bench/package.ts", "--child", "shards", "--dir", "bench/.work/package-20000", "--shard-size", "1000"] }).output();
const r = JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!);
console.log(new TextDecoder().decode(out.stderr).trim(), r.seconds);
const store = new ObjectStore("bench/.work/package-20000/cache");
for (const d of Object.values(r.files) as string[]) await store.remove(d);
