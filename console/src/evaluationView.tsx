// The model's evaluation, read from the files training wrote (EvaluationResult, EvaluationManifest).
import { useEffect, useState } from "preact/hooks";
import type { ModelDescription } from "@aws-sdk/client-lookoutvision";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import { imageUrl, s3 } from "./api";
import { frame, H, sx, sy, W } from "./chart";
import { histogram, parseEvaluationManifest, precisionRecall, roc, THRESHOLD, type Judged, type Point } from "./evaluation";
import { Card, report } from "./ui";

async function readText(bucket?: string, key?: string): Promise<string> {
  const result = await s3().send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return (await result.Body?.transformToString()) ?? "";
}

function Axes({ x, y }: { x: string; y: string }) {
  return (
    <g class="axes">
      <rect {...frame()} fill="none" />
      <text x={(sx(0) + sx(1)) / 2} y={H - 6} text-anchor="middle">{x}</text>
      <text x={10} y={(sy(0) + sy(1)) / 2} text-anchor="middle" transform={`rotate(-90 10 ${(sy(0) + sy(1)) / 2})`}>{y}</text>
      <text x={sx(0)} y={frame().y + frame().height + 11} text-anchor="middle">0</text>
      <text x={sx(1)} y={frame().y + frame().height + 11} text-anchor="middle">1</text>
    </g>
  );
}

function Curve({ title, points, x, y }: { title: string; points: Point[]; x: string; y: string }) {
  return (
    <figure class="chart" data-chart={title.split(" ")[0].toLowerCase()}>
      <figcaption>{title}</figcaption>
      <svg width={W} height={H}>
        <Axes x={x} y={y} />
        <polyline points={points.map(([px, py]) => `${sx(px)},${sy(py)}`).join(" ")} fill="none" stroke="#0972d3" stroke-width="2" />
      </svg>
    </figure>
  );
}

function Histogram({ items }: { items: Judged[] }) {
  const bins = 20;
  const { normal, anomaly } = histogram(items, bins);
  const top = Math.max(1, ...normal.map((n, i) => n + anomaly[i]));
  const bw = (sx(1) - sx(0)) / bins;
  return (
    <figure class="chart" data-chart="scores">
      <figcaption>Anomaly scores (threshold {THRESHOLD})</figcaption>
      <svg width={W} height={H}>
        <Axes x="anomaly score: normal green, anomaly red" y="images" />
        {normal.map((n, i) => {
          const hn = (n / top) * (sy(0) - sy(1));
          const ha = (anomaly[i] / top) * (sy(0) - sy(1));
          return (
            <g key={i}>
              <rect x={sx(0) + i * bw + 1} y={sy(0) - hn} width={bw - 2} height={hn} fill="#037f0c" />
              <rect x={sx(0) + i * bw + 1} y={sy(0) - hn - ha} width={bw - 2} height={ha} fill="#d91515" />
            </g>
          );
        })}
        <line x1={sx(THRESHOLD)} x2={sx(THRESHOLD)} y1={sy(0)} y2={sy(1)} stroke="#16191f" stroke-dasharray="4 3" />
      </svg>
    </figure>
  );
}

export function EvaluationView({ model }: { model: ModelDescription }) {
  const [metrics, setMetrics] = useState<Record<string, unknown> | null>(null);
  const [items, setItems] = useState<Judged[]>([]);
  const [urls, setUrls] = useState<string[]>([]);
  const [onlyWrong, setOnlyWrong] = useState(false);
  useEffect(() => {
    (async () => {
      const result = JSON.parse(await readText(model.EvaluationResult?.Bucket, model.EvaluationResult?.Key));
      setMetrics(result?.AggregatedEvaluationResults?.Metrics ?? {});
      const judged = parseEvaluationManifest(await readText(model.EvaluationManifest?.Bucket, model.EvaluationManifest?.Key));
      setItems(judged);
      setUrls(await Promise.all(judged.map((j) => imageUrl(j.sourceRef))));
    })().catch(report);
  }, [model.EvaluationManifest?.Key]);
  const shown = items.map((item, i) => ({ item, url: urls[i] })).filter(({ item }) => !onlyWrong || item.truth !== item.predicted);
  const wrong = items.filter((i) => i.truth !== i.predicted).length;
  const num = (key: string) => (typeof metrics?.[key] === "number" ? (metrics[key] as number).toFixed(3) : "–");
  return (
    <Card title="Evaluation">
      <div class="stats" id="evaluation-metrics">
        <span>ROC AUC <b data-metric="rocauc">{num("ROCAUC")}</b></span>
        <span>Average precision <b>{num("AveragePrecision")}</b></span>
        <span>Test images <b data-metric="tested">{items.length}</b></span>
        <span>Wrong <b data-metric="wrong">{wrong}</b></span>
      </div>
      {items.length > 0 && (
        <div class="row charts">
          <Curve title={`ROC (area ${roc(items).auc.toFixed(3)})`} points={roc(items).points} x="false positive rate" y="true positive rate" />
          <Curve title="Precision-recall" points={precisionRecall(items)} x="recall" y="precision" />
          <Histogram items={items} />
        </div>
      )}
      <label><input type="checkbox" checked={onlyWrong} onChange={(e) => setOnlyWrong(e.currentTarget.checked)} /> only the wrong verdicts</label>
      <div class="grid" id="evaluation-images">
        {shown.map(({ item, url }) => (
          <figure key={item.sourceRef} class={`thumb ${item.truth === item.predicted ? "right" : "wrong"}`} data-right={String(item.truth === item.predicted)}>
            <img src={url} loading="lazy" alt={item.sourceRef} />
            <figcaption>
              <span class={`label ${item.truth ? "anomaly" : "normal"}`}>{item.truth ? "anomaly" : "normal"}</span>
              <span>→ {item.predicted ? "anomaly" : "normal"} {item.score.toFixed(2)}</span>
              <span class={item.truth === item.predicted ? "verdict right" : "verdict wrong"}>{item.truth === item.predicted ? "✓ right" : "✗ wrong"}</span>
            </figcaption>
          </figure>
        ))}
      </div>
    </Card>
  );
}
