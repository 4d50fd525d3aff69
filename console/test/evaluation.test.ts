import { test } from "node:test";
import assert from "node:assert/strict";
import { histogram, parseEvaluationManifest, precisionRecall, roc, THRESHOLD } from "../src/evaluation";

function line(ref: string, truth: string, predicted: string, confidence: number): string {
  return JSON.stringify({
    "source-ref": ref,
    "source-ref-metadata": { "creation-date": "x" },
    "anomaly-label": truth === "anomaly" ? 1 : 0,
    "anomaly-label-metadata": { "class-name": truth },
    "anomaly-label-detected": predicted === "anomaly" ? 1 : 0,
    "anomaly-label-detected-metadata": { "class-name": predicted, confidence },
  });
}

const manifest = [
  line("s3://b/1", "anomaly", "anomaly", 0.9), // score 0.9
  line("s3://b/2", "normal", "normal", 0.8), // score 0.2
  line("s3://b/3", "anomaly", "normal", 0.6), // score 0.4: missed
  line("s3://b/4", "normal", "normal", 0.95), // score 0.05
].join("\n");

test("verdicts and anomaly scores from L4V's evaluation manifest", () => {
  const items = parseEvaluationManifest(manifest);
  assert.equal(items.length, 4);
  assert.deepEqual(items.map((i) => [i.truth, i.predicted]), [[true, true], [false, false], [true, false], [false, false]]);
  assert.ok(Math.abs(items[2].score - 0.4) < 1e-9);
});

test("ROC area, PR points, histogram and the threshold", () => {
  const items = parseEvaluationManifest(manifest);
  const { points, auc } = roc(items);
  assert.equal(auc, 1); // both anomalies score above both normals
  assert.deepEqual(points.at(-1), [1, 1]);
  assert.deepEqual(precisionRecall(items).slice(0, 2), [[0.5, 1], [1, 1]]);
  const h = histogram(items, 10);
  assert.equal(h.anomaly[9], 1);
  assert.equal(h.normal[0], 1);
  // Every verdict agrees with the one threshold on the anomaly score.
  assert.ok(items.every((i) => i.predicted === i.score >= THRESHOLD));
});
