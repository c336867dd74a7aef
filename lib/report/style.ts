/**
 * The report's stylesheet, inlined into its `<style>` (the page loads nothing), and the two
 * colours that mean "before optimization" and "after" in its text and its charts.
 *
 * @module
 */

/** The colour of what the encoder alone gives. */
export const BEFORE = "#d1495b";
/** The colour of what optimization gives. */
export const AFTER = "#00798c";

/** The report's CSS. */
export const STYLE = `
:root{--fg:#1f2933;--muted:#616e7c;--line:#e4e7eb;--bg:#f7f8fa;--panel:#fff;--before:${BEFORE};--after:${AFTER}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1240px;margin:0 auto;padding:28px 24px 48px}
header h1{font-size:28px;margin:0 0 4px;letter-spacing:-.01em}
.sub{color:var(--muted);margin:0 0 6px}
.sub:last-child{margin-bottom:22px}
.models{color:var(--muted);margin:0 0 22px;font-size:14px}
h2{font-size:19px;margin:34px 0 12px}
.panel h2{margin-top:0}
h2 .count{font-size:13px;background:var(--line);border-radius:10px;padding:1px 8px;vertical-align:middle;color:var(--muted)}
.grid{display:grid;gap:18px}
.grid.two{grid-template-columns:repeat(auto-fit,minmax(min(100%,460px),1fr))}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:14px}
.card,.panel{background:var(--panel);border:1px solid var(--line);border-radius:10px;padding:14px 16px;min-width:0}
.card .label{font-size:12px;text-transform:uppercase;letter-spacing:.06em;color:var(--muted)}
.card .value{font-size:24px;font-weight:650;margin-top:2px;font-variant-numeric:tabular-nums;white-space:nowrap}
.card .note,.note{font-size:13px;color:var(--muted)}
.card.pair .value{font-size:20px;line-height:36px}
.nowrap{white-space:nowrap}
.card.bad .value{color:var(--before)}
.card.good .value{color:#2f855a}
.before{color:var(--before)}.after{color:var(--after)}.arrow{color:var(--muted);margin:0 6px;font-weight:400}
.grid.two>section,.grid.two>div{min-width:0}
section.grid.two{margin-top:22px}
table{border-collapse:collapse;width:100%;font-size:14px}
th{font-weight:600;text-align:left;color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.05em}
th,td{padding:6px 8px;border-bottom:1px solid var(--line);vertical-align:top}
tfoot td{font-weight:600;border-bottom:none}
.num{text-align:right;font-variant-numeric:tabular-nums}
.mono,.reason,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px}
.reason{overflow-wrap:anywhere;color:#7b341e}
.scroll{max-height:360px;overflow:auto}
.wide{overflow-x:auto}
.dot{display:inline-block;width:10px;height:10px;border-radius:50%;margin-right:8px}
.share{display:flex;align-items:center;gap:8px}
.meter{flex:1;height:8px;background:var(--line);border-radius:4px;overflow:hidden}
.meter div{height:100%;background:var(--after)}
.share span{font-size:13px;color:var(--muted);min-width:54px;text-align:right}
.ok{color:#2f855a}
.compact{width:auto;min-width:280px;margin-top:14px}
.panel h3{font-size:15px;margin:0 0 6px}
.panel h3 .count{font-size:12px;background:var(--line);border-radius:10px;padding:1px 8px;color:var(--muted)}
.run{background:#eef6f7;border:1px solid #cfe5e8;border-radius:10px;padding:4px 16px 16px;margin:0 0 22px}
.run h2{margin-top:14px}
.built{margin:0 0 12px}
.hit{font-size:11px;background:#e6f4f1;color:#00606f;border-radius:8px;padding:1px 7px;white-space:nowrap}
.status{font-size:11px;background:#fbe9eb;color:#9b2226;border-radius:8px;padding:1px 7px}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px}
figure{margin:0}
.chart-panel figcaption{font-size:13px;color:var(--muted);margin-top:6px}
svg.chart{display:block;width:100%;height:auto;font-family:inherit}
svg .grid{stroke:#eef0f3}
svg .axis{stroke:#9aa5b1}
svg .tickmark{stroke:#9aa5b1}
svg .tick{font-size:11.5px;fill:#52606d}
svg .tick.inside{fill:#fff}
svg .label{font-size:12.5px;fill:#323f4b;font-weight:600}
svg .legend{font-size:12px;fill:#323f4b}
svg .note{font-size:11.5px;fill:#7b8794}
svg .diagonal{stroke:#7b8794;stroke-dasharray:5 4;stroke-width:1.2}
svg .nodata{fill:#f5f7fa;stroke:var(--line)}
.grid.samples{grid-template-columns:repeat(auto-fill,minmax(min(100%,440px),1fr))}
.sample{background:var(--panel);border:1px solid var(--line);border-radius:10px;padding:12px}
.sample h3{font-size:14px;margin:0 0 8px;display:flex;gap:8px;align-items:center}
.tag{font-size:11px;background:#e6f4f1;color:#00606f;border-radius:8px;padding:1px 8px;font-weight:500}
.triplet{display:grid;grid-template-columns:repeat(3,1fr);gap:8px}
.triplet img{width:100%;height:auto;aspect-ratio:1;object-fit:contain;display:block;border-radius:6px;background:#eee}
.triplet figcaption{font-size:12px;color:var(--muted);margin-top:4px;display:flex;justify-content:space-between;gap:4px;flex-wrap:wrap}
.triplet figcaption b{color:var(--fg);font-weight:600;font-variant-numeric:tabular-nums}
pre.config{background:var(--panel);border:1px solid var(--line);border-radius:10px;padding:14px 16px;overflow:auto;max-height:480px;margin:0}
footer{margin-top:40px;color:var(--muted);font-size:13px;text-align:center}
@media (max-width:600px){main{padding:18px 12px}.card .value{font-size:20px}}
`;
