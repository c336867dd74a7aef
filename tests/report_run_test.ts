import { join } from "node:path";
import sharp from "sharp";
import { assert, assertEquals, assertMatch } from "./fixtures/assert.ts";
import { chromiumRequirement, withChromiumPage } from "./fixtures/chromium.ts";
import { PipelineProject } from "./fixtures/pipeline_project.ts";
import { testIf } from "./fixtures/skip.ts";
import { writeDemoVae } from "./fixtures/vae.ts";
import type { RunFacts } from "../lib/dag/run_facts.ts";
import { formatDuration, formatTime } from "../lib/report/format.ts";

interface Row {
  task: string;
  hit: string | null;
  cells: string[];
}

testIf(chromiumRequirement(), {
  name: "the report states the run that built the dataset: cached and run tasks, in Chromium",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "lf_report_run_" });
    try {
      const images = join(dir, "holiday", "beach");
      await Deno.mkdir(images, { recursive: true });
      for (let k = 0; k < 3; k++) {
        await sharp({
          create: { width: 72, height: 64, channels: 3, background: { r: 40 * k, g: 120, b: 200 } },
        }).png().toFile(join(images, `img${k}.png`));
      }
      const vae = await writeDemoVae(join(dir, "vae"));
      const config = (maxSteps: number) => ({
        dataset: { kind: "folder", path: join(dir, "holiday") },
        preprocess: { size: 64 },
        model: {
          encoder: { path: vae.encoder },
          decoder: { path: vae.decoder },
          scaling_factor: 1.0,
          providers: ["cpu"],
        },
        optimize: { max_steps: maxSteps, batch_size: 3, patience: 50 },
        package: { samples: 1, formats: ["npz"] },
      });
      const p = await PipelineProject.create(config(3));
      try {
        assertEquals((await p.run(["run"])).code, 0);
        // A new step count: everything before optimize comes from the cache.
        await p.writeConfig(config(5));
        const second = await p.run(["run", "--json"]);
        assertEquals(second.code, 0, second.stderr);
        const runId = second.events.find((e) => e.event === "run-start")!.run as number;
        const ends = new Map(
          second.events.filter((e) => e.event === "task-end").map((e) => [
            e.task as string,
            e.counts as { ran: number; cached: number; failed: number },
          ]),
        );
        const facts: RunFacts = JSON.parse(await Deno.readTextFile(join(p.out, "run.json")));
        const html = await Deno.readFile(join(p.out, "report.html"));
        assertEquals(facts.run, runId);

        const page = await withChromiumPage(`file://${join(p.out, "report.html")}`, async (pg) => ({
          title: await pg.evaluate<string>("document.title"),
          h1: await pg.evaluate<string>("document.querySelector('h1').textContent"),
          built: await pg.evaluate<string>(
            "document.querySelector('#run time').getAttribute('datetime')",
          ),
          summary: await pg.evaluate<string>("document.querySelector('#run .built').innerText"),
          headers: await pg.evaluate<string[]>(
            "[...document.querySelectorAll('#run thead th')].map((th) => th.innerText.toLowerCase())",
          ),
          rows: await pg.evaluate<Row[]>(
            `[...document.querySelectorAll('#run tbody tr')].map((tr) => ({
              task: tr.dataset.task,
              hit: tr.querySelector('.hit')?.textContent ?? null,
              cells: [...tr.querySelectorAll('td')].slice(1).map((td) => td.innerText.trim()),
            }))`,
          ),
          stepTicks: await pg.evaluate<string[]>(
            `[...document.querySelectorAll('svg[aria-label="Steps per image"] text.tick')]
              .map((t) => t.textContent)`,
          ),
          text: await pg.evaluate<string>("document.body.innerText"),
          errors: [...pg.errors],
        }));
        assertEquals(page.errors, []);
        assertEquals(page.h1, "holiday");
        assertEquals(page.title, "holiday · latentforge dataset report");
        assertEquals(page.built, facts.built);
        assertMatch(
          page.summary,
          new RegExp(`^Built ${formatTime(facts.built)} by run ${runId}, .* after it started`),
        );
        assertEquals(page.headers, [
          "task",
          "wall time",
          "item time, summed",
          "ran",
          "cached",
          "failed",
          "items/s",
        ]);
        const tasks = [
          "fetch-json",
          "fetch-images",
          "verify-sizes",
          "label-split",
          "preprocess",
          "encode",
          "optimize",
          "package",
        ];
        assertEquals(page.rows.map((r) => r.task), tasks);
        for (const row of page.rows) {
          const f = facts.tasks.find((t) => t.task === row.task)!;
          const end = ends.get(row.task)!;
          const [wall, itemTime, ran, cached, failed, rate] = row.cells;
          assertEquals(wall, formatDuration(f.wall_s!), `${row.task} wall time`);
          assertEquals(
            [ran, cached, failed],
            [end.ran, end.cached, end.failed].map(String),
            row.task,
          );
          const cachedTask = !["optimize", "package"].includes(row.task);
          assertEquals(row.hit, cachedTask ? "cache hit" : null, `${row.task} marked`);
          if (row.task === "optimize") {
            assertEquals(ran, "3");
            assertEquals(itemTime, formatDuration(f.item_s!));
            assert(f.item_s! > 0);
            // The recorded rate (ran per recorded wall second, to the millisecond's precision),
            // as the page rounds it: rounding 3 / wall_s directly can land on the other side.
            assertEquals(f.items_per_s, Math.round(3 / f.wall_s! * 1000) / 1000);
            assertEquals(Number(rate), Number(f.items_per_s!.toFixed(rate.split(".")[1]?.length)));
          } else {
            assertEquals(rate, "–", `${row.task} items/s`);
          }
        }
        assert(page.text.includes("in 1 split"), "the Images card counts 1 split");
        assert(!/\b1 (splits|images|tasks)\b/.test(page.text), "a plural after 1");
        assert(page.stepTicks.length >= 2, `step ticks ${page.stepTicks}`);
        for (const t of page.stepTicks) assertMatch(t, /^\d+$/);

        // A later run is a cache hit: the same report and run.json, package not rerun.
        const third = await p.run(["run", "--json"]);
        assertEquals(third.code, 0, third.stderr);
        const pkg = third.events.find((e) => e.event === "task-end" && e.task === "package")!;
        assertEquals(pkg.counts, { total: 1, ran: 0, cached: 1, failed: 0, final: true });
        assertEquals(await Deno.readFile(join(p.out, "report.html")), html);
        assertEquals(JSON.parse(await Deno.readTextFile(join(p.out, "run.json"))), facts);
      } finally {
        await p.cleanup();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
