import { test } from "node:test";
import assert from "node:assert/strict";
import { changes, newEntry, uniquePaths, parseEntry, parseS3Uri, uploadKey, withLabel, withMask } from "../src/manifest";

const groundTruth = JSON.stringify({
  "source-ref": "s3://b/img/1.png",
  "my-label": 1,
  "my-label-metadata": { "class-name": "anomaly", type: "groundtruth/image-classification" },
  "anomaly-mask-ref": "s3://b/masks/1.png",
  "anomaly-mask-ref-metadata": { "internal-color-map": { "0": { "class-name": "BACKGROUND", "hex-color": "#ffffff" }, "1": { "class-name": "scratch", "hex-color": "#23a436" } } },
});

test("parses a Ground Truth line with a label under any attribute name and a mask", () => {
  const entry = parseEntry(groundTruth);
  assert.equal(entry.label, "anomaly");
  assert.deepEqual(entry.anomalyTypes, ["scratch"]);
  assert.equal(entry.maskRef, "s3://b/masks/1.png");
  assert.equal(parseEntry(JSON.stringify({ "source-ref": "s3://b/x.png" })).label, null);
});

test("relabelling normal replaces the old label attribute and drops the mask", () => {
  const line = withLabel(parseEntry(groundTruth), "normal", new Date(0));
  assert.equal(line["my-label"], undefined);
  assert.equal(line["my-label-metadata"], undefined);
  assert.equal(line["anomaly-mask-ref"], undefined);
  assert.equal(line["anomaly-label"], 0);
  assert.equal((line["anomaly-label-metadata"] as Record<string, unknown>)["class-name"], "normal");
  assert.equal(parseEntry(JSON.stringify(line)).label, "normal");
});

test("relabelling anomaly keeps the mask", () => {
  const line = withLabel(parseEntry(groundTruth), "anomaly");
  assert.equal(line["anomaly-mask-ref"], "s3://b/masks/1.png");
  assert.equal(line["anomaly-label"], 1);
});

test("a mask entry has a background colour and one colour per type", () => {
  const entry = parseEntry(JSON.stringify(newEntry("s3://b/2.png", null)));
  const line = withMask(entry, "s3://b/2_mask.png", [{ name: "dent", colour: "#2bb5f8" }]);
  const parsed = parseEntry(JSON.stringify(line));
  assert.equal(parsed.label, "anomaly");
  assert.deepEqual(parsed.anomalyTypes, ["dent"]);
});

test("changes are JSON lines; S3 URIs and upload keys", () => {
  const text = new TextDecoder().decode(changes([{ a: 1 }, { b: 2 }]));
  assert.equal(text, '{"a":1}\n{"b":2}\n');
  assert.deepEqual(parseS3Uri("s3://bucket/a/b.png"), { bucket: "bucket", key: "a/b.png" });
  assert.throws(() => parseS3Uri("http://x"));
  assert.equal(uploadKey("p", "train", "b1", "good/0 1.png"), "console/p/train/b1/good/0_1.png");
});

test("same names in one upload get a suffix", () => {
  assert.deepEqual(uniquePaths(["a.png", "a.png", "b/a.png", "a.png"]), ["a.png", "a-2.png", "b/a.png", "a-3.png"]);
});
