/**
 * The fairness audit as one self-contained HTML page: tables, and inline SVG plots of each group's rates with
 * their bootstrap intervals. No scripts, no external assets: it opens the same from an e-mail or an archive.
 */
import type { Figure, GroupReport } from "../fairness/index.js";
import { type AuditSection, describeData, type FairnessAuditReport, isLedgerData } from "./audit-fairness.js";

const esc = (text: string): string =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

const fmt = (x: number | null | undefined, digits = 3): string =>
  x === null || x === undefined || !Number.isFinite(x) ? "—" : x.toFixed(digits);

function figureCell(f: Figure | undefined): string {
  if (f === undefined) return "<td>—</td>";
  if (!Number.isFinite(f.value))
    return `<td title="${esc(f.reason ?? "undefined")}">— <small>${esc(f.reason ?? "")}</small></td>`;
  const interval =
    f.interval && Number.isFinite(f.interval.lower)
      ? ` <small>[${fmt(f.interval.lower)}, ${fmt(f.interval.upper)}]</small>`
      : "";
  return `<td>${fmt(f.value)}${interval}</td>`;
}

const VERDICT_CLASS = { pass: "pass", fail: "fail", insufficient: "insufficient" } as const;

/** Per-group rates as dots with interval bars, on a 0–1 axis. */
export function ratePlot(
  title: string,
  groups: readonly GroupReport[],
  pick: (g: GroupReport) => Figure,
): string {
  const shown = groups.filter((g) => g.count > 0);
  const left = 200;
  const width = 640;
  const plot = width - left - 20;
  const row = 24;
  const top = 28;
  const height = top + row * shown.length + 30;
  const x = (v: number) => left + Math.max(0, Math.min(1, v)) * plot;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${esc(title)}">`,
    `<title>${esc(title)}</title>`,
    `<text x="${left}" y="16" font-size="13" font-weight="bold">${esc(title)}</text>`,
  ];
  for (const tick of [0, 0.25, 0.5, 0.75, 1]) {
    const tx = x(tick).toFixed(1);
    parts.push(
      `<line x1="${tx}" y1="${top - 4}" x2="${tx}" y2="${height - 24}" stroke="#ddd"/>`,
      `<text x="${tx}" y="${height - 8}" font-size="11" text-anchor="middle">${tick}</text>`,
    );
  }
  shown.forEach((g, i) => {
    const y = top + row * i + row / 2;
    const f = pick(g);
    parts.push(
      `<text x="${left - 8}" y="${y + 4}" font-size="12" text-anchor="end">${esc(g.group.label)} (n=${g.count})</text>`,
    );
    if (f.interval && Number.isFinite(f.interval.lower)) {
      parts.push(
        `<line class="interval" x1="${x(f.interval.lower).toFixed(1)}" y1="${y}" x2="${x(f.interval.upper).toFixed(1)}" y2="${y}" stroke="#555" stroke-width="2"/>`,
      );
    }
    if (Number.isFinite(f.value)) {
      const excluded = g.flags.includes("excluded");
      parts.push(
        `<circle class="estimate" cx="${x(f.value).toFixed(1)}" cy="${y}" r="5" fill="${excluded ? "#fff" : "#1f5fa8"}" stroke="#1f5fa8"><title>${esc(g.group.label)}: ${fmt(f.value)}</title></circle>`,
      );
    }
  });
  parts.push("</svg>");
  return parts.join("");
}

function section(s: AuditSection, ledger: boolean): string {
  const a = s.audit;
  const name = s.attributes.join(" × ");
  const criteria = s.criteria
    .map(
      (c) =>
        `<tr><td>${c.criterion}</td><td>${c.figure}</td><td>${c.value === null ? `— <small>${esc(c.reason ?? "")}</small>` : fmt(c.value)}</td><td>${c.interval ? `[${fmt(c.interval.lower)}, ${fmt(c.interval.upper)}]` : "—"}</td><td>${c.comparison} ${c.threshold}</td><td class="${VERDICT_CLASS[c.verdict]}">${c.verdict}</td><td>${c.interval_agrees === null ? "—" : c.interval_agrees ? "yes" : "no"}</td></tr>`,
    )
    .join("");
  // A ledger audit: selection rates over every decision, error rates over the labelled ones (same groups).
  const errors = s.labelled_audit;
  const groups = a.groups
    .map((g, i) => {
      const e = errors === undefined ? (ledger ? undefined : g) : errors.groups[i];
      return `<tr><td>${esc(g.group.label)}</td><td>${g.count}</td>${ledger ? `<td>${e?.count ?? 0}</td>` : ""}<td>${g.flags.join(", ") || ""}</td>${figureCell(g.metrics.selection_rate)}${figureCell(e?.metrics.tpr)}${figureCell(e?.metrics.fpr)}${figureCell(e?.metrics.precision)}${figureCell(e?.metrics.accuracy)}${figureCell(e?.meanScore ?? g.meanScore)}</tr>`;
    })
    .join("");
  const tested =
    errors === undefined
      ? a.tests
      : {
          ...a.tests,
          results: [...a.tests.results, ...errors.tests.results.filter((t) => t.metric !== "selection_rate")],
        };
  const selection = a.disparities.find((d) => d.metric === "selection_rate")!;
  const toReference = selection.toReference
    .map((r) => `<tr><td>${esc(r.group)}</td>${figureCell(r.ratio)}${figureCell(r.difference)}</tr>`)
    .join("");
  const tests = tested.results
    .map(
      (t) =>
        `<tr><td>${t.metric}</td><td>${esc(t.group)}</td><td>${esc(t.reference)}</td><td>${t.successes}/${t.trials}</td><td>${t.referenceSuccesses}/${t.referenceTrials}</td><td>${fmt(t.pValue, 4)}</td><td>${fmt(t.adjustedPValue, 4)}</td><td>${t.significant ? "yes" : "no"}</td></tr>`,
    )
    .join("");
  return `<section>
<h2>${esc(name)} <span class="${VERDICT_CLASS[s.verdict]}">${s.verdict}</span></h2>
<p>Reference group: ${esc(s.reference)} (selection rate: ${esc(selection.reference ?? "none")}). Groups under ${a.minGroupSize} rows are flagged small and left out of the comparisons.</p>
<h3>Criteria</h3>
<table><thead><tr><th>criterion</th><th>figure</th><th>value</th><th>${a.bootstrap ? `${Math.round(a.bootstrap.level * 100)}% interval` : "interval"}</th><th>threshold</th><th>verdict</th><th>interval agrees</th></tr></thead><tbody>${criteria}</tbody></table>
<h3>Groups</h3>
<table><thead><tr><th>group</th><th>${ledger ? "decisions</th><th>labelled" : "rows"}</th><th>flags</th><th>selection rate</th><th>TPR</th><th>FPR</th><th>precision</th><th>accuracy</th><th>mean score</th></tr></thead><tbody>${groups}</tbody></table>
<div class="plots">${ratePlot(`Selection rate by group: ${name}`, a.groups, (g) => g.metrics.selection_rate)}${errors !== undefined || !ledger ? ratePlot(`True positive rate by group: ${name}${ledger ? " (labelled decisions)" : ""}`, (errors ?? a).groups, (g) => g.metrics.tpr) : ""}</div>
<h3>Selection rate against the reference group</h3>
<table><thead><tr><th>group</th><th>ratio</th><th>difference</th></tr></thead><tbody>${toReference}</tbody></table>
<h3>Tests against the reference (${a.tests.method}, ${a.tests.correction} correction, α = ${a.tests.alpha})</h3>
<table><thead><tr><th>rate</th><th>group</th><th>reference</th><th>group successes</th><th>reference successes</th><th>p</th><th>adjusted p</th><th>significant</th></tr></thead><tbody>${tests}</tbody></table>
</section>`;
}

/** The whole report as an HTML page. */
export function renderAuditHtml(report: FairnessAuditReport): string {
  const t = report.policy.thresholds;
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Fairness audit: ${esc(report.model)} ${esc(report.version)}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;font-size:14px}
th{background:#f3f3f3}
.pass{color:#116611;font-weight:bold}.fail{color:#b00020;font-weight:bold}.insufficient{color:#8a6d00;font-weight:bold}
.note{background:#fff8e1;border-left:4px solid #e0a800;padding:.5em 1em}
small{color:#666}
</style></head><body>
<h1>Fairness audit: ${esc(report.model)} ${esc(report.version)} <span class="${VERDICT_CLASS[report.verdict]}">${report.verdict}</span></h1>
<table><tbody>
<tr><th>data</th><td>${esc(describeData(report))}</td></tr>
<tr><th>manifest sha256</th><td>${report.manifest_sha256}</td></tr>
<tr><th>favourable outcome</th><td>${esc(report.favourable_label)}: a selection is a decision of ${esc(report.favourable_label)}; a positive outcome is a label of ${esc(report.favourable_label)} (policy threshold ${report.threshold})</td></tr>
<tr><th>overall</th><td>accuracy ${fmt(report.overall.accuracy)}, selection rate ${fmt(report.overall.selection_rate)}, base rate ${fmt(report.overall.base_rate)}</td></tr>
<tr><th>thresholds</th><td>selection-rate ratio ≥ ${t.selectionRateRatio}; equal opportunity difference ≤ ${t.equalOpportunityDifference}; equalized odds difference ≤ ${t.equalizedOddsDifference}</td></tr>
<tr><th>method</th><td>reference ${esc(report.policy.reference)}, minimum group size ${report.policy.min_group_size}, α ${report.policy.alpha}, ${report.policy.bootstrap.resamples} bootstrap resamples (seed ${report.policy.bootstrap.seed})</td></tr>
</tbody></table>
<p class="note">A verdict compares the point estimate with the policy's threshold; "interval agrees" says whether the whole bootstrap interval lies on the same side. Figures are over this data set only; small groups are excluded from comparisons, not hidden.</p>
${report.audits.map((s) => section(s, isLedgerData(report.data))).join("\n")}
</body></html>
`;
}
