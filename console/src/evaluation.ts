// The evaluation files training writes (L4V's EvaluationManifest: one line per test image with its
// label and the model's verdict and confidence) turned into curves. Pure: unit-tested.
//
// Scores are the model's anomaly score, 0 to 1: DetectAnomalies' Confidence for an anomalous
// verdict, 1 - Confidence for a normal one. The evaluation report's score histogram uses the same.

/** The anomaly score at the model's threshold: from here up an image is anomalous. */
export const THRESHOLD = 0.5;

export interface Judged {
  sourceRef: string;
  truth: boolean; // labeled anomaly
  predicted: boolean; // the model said anomaly
  score: number; // the anomaly score, 0..1
}

function detected(line: Record<string, unknown>): { predicted: boolean; confidence: number } | null {
  for (const [key, value] of Object.entries(line)) {
    if (!key.endsWith("-detected-metadata")) continue;
    const meta = value as { "class-name"?: string; confidence?: number };
    return { predicted: meta["class-name"] === "anomaly", confidence: Number(meta.confidence ?? 0) };
  }
  return null;
}

function truthOf(line: Record<string, unknown>): boolean | null {
  for (const [key, value] of Object.entries(line)) {
    if (!key.endsWith("-metadata") || key.endsWith("-detected-metadata") || key === "source-ref-metadata") continue;
    const name = (value as { "class-name"?: string })?.["class-name"];
    if (name === "anomaly" || name === "normal") return name === "anomaly";
  }
  return null;
}

export function parseEvaluationManifest(text: string): Judged[] {
  const out: Judged[] = [];
  for (const raw of text.split("\n")) {
    if (!raw.trim()) continue;
    const line = JSON.parse(raw) as Record<string, unknown>;
    const verdict = detected(line);
    const truth = truthOf(line);
    if (!verdict || truth === null) continue;
    const score = verdict.predicted ? verdict.confidence : 1 - verdict.confidence;
    out.push({ sourceRef: String(line["source-ref"]), truth, predicted: verdict.predicted, score });
  }
  return out;
}

export type Point = [number, number];

/** ROC points (false positive rate, true positive rate) from the highest score down, and the area. */
export function roc(items: Judged[]): { points: Point[]; auc: number } {
  const sorted = [...items].sort((a, b) => b.score - a.score);
  const positives = items.filter((i) => i.truth).length;
  const negatives = items.length - positives;
  const points: Point[] = [[0, 0]];
  let tp = 0;
  let fp = 0;
  sorted.forEach((item, i) => {
    item.truth ? tp++ : fp++;
    if (i === sorted.length - 1 || sorted[i + 1].score !== item.score) points.push([negatives ? fp / negatives : 0, positives ? tp / positives : 0]);
  });
  let auc = 0;
  for (let i = 1; i < points.length; i++) auc += (points[i][0] - points[i - 1][0]) * (points[i][1] + points[i - 1][1]) / 2;
  return { points, auc };
}

/** Precision-recall points (recall, precision) from the highest score down. */
export function precisionRecall(items: Judged[]): Point[] {
  const sorted = [...items].sort((a, b) => b.score - a.score);
  const positives = items.filter((i) => i.truth).length;
  const points: Point[] = [];
  let tp = 0;
  sorted.forEach((item, i) => {
    if (item.truth) tp++;
    if (i === sorted.length - 1 || sorted[i + 1].score !== item.score) points.push([positives ? tp / positives : 0, tp / (i + 1)]);
  });
  return points;
}

/** Score counts per bin, normal and anomaly apart. */
export function histogram(items: Judged[], bins = 20): { normal: number[]; anomaly: number[] } {
  const normal = new Array<number>(bins).fill(0);
  const anomaly = new Array<number>(bins).fill(0);
  for (const item of items) {
    const bin = Math.min(bins - 1, Math.floor(item.score * bins));
    (item.truth ? anomaly : normal)[bin]++;
  }
  return { normal, anomaly };
}
