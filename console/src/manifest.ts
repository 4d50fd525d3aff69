// Dataset entries as L4V writes them (one JSON line per image), and the few edits the console makes.
// Pure functions: unit-tested in test/manifest.test.ts.

export type Label = "normal" | "anomaly" | null;

export interface Entry {
  sourceRef: string;
  label: Label;
  anomalyTypes: string[];
  maskRef: string | null;
  raw: Record<string, unknown>;
}

const LABEL_KEY = "anomaly-label";
const MASK_KEY = "anomaly-mask-ref";
export const BACKGROUND = { "class-name": "BACKGROUND", "hex-color": "#ffffff" };

// L4V's console colours for anomaly types, in the order types are added to a project.
export const ANOMALY_COLOURS = ["#23a436", "#2bb5f8", "#ff1a77", "#9d2eff", "#ff8800", "#fbe04c", "#0054fc", "#b0401f"];

function labelOf(data: Record<string, unknown>): Label {
  for (const [key, value] of Object.entries(data)) {
    if (!key.endsWith("-metadata") || key.startsWith(MASK_KEY)) continue;
    const className = (value as { "class-name"?: unknown } | null)?.["class-name"];
    if (typeof className === "string") {
      const name = className.trim().toLowerCase();
      if (name === "normal" || name === "anomaly") return name;
    }
  }
  return null;
}

function maskTypes(data: Record<string, unknown>): string[] {
  const meta = data[`${MASK_KEY}-metadata`] as { "internal-color-map"?: Record<string, { "class-name"?: string }> } | undefined;
  const names = Object.values(meta?.["internal-color-map"] ?? {}).map((c) => c["class-name"] ?? "");
  return names.filter((n) => n && n.toUpperCase() !== "BACKGROUND");
}

export function parseEntry(line: string): Entry {
  const raw = JSON.parse(line) as Record<string, unknown>;
  const mask = raw[MASK_KEY];
  return {
    sourceRef: String(raw["source-ref"]),
    label: labelOf(raw),
    anomalyTypes: maskTypes(raw),
    maskRef: typeof mask === "string" ? mask : null,
    raw,
  };
}

function classification(label: "normal" | "anomaly", now: Date): Record<string, unknown> {
  return {
    [LABEL_KEY]: label === "anomaly" ? 1 : 0,
    [`${LABEL_KEY}-metadata`]: {
      "class-name": label,
      confidence: 1,
      "creation-date": now.toISOString(),
      "human-annotated": "yes",
      "job-name": "labeling-job/openlookout-console",
      type: "groundtruth/image-classification",
    },
  };
}

/** The entry with its image label set; a normal image loses any mask (L4V: normal has no defect). */
export function withLabel(entry: Entry, label: "normal" | "anomaly", now = new Date()): Record<string, unknown> {
  const out: Record<string, unknown> = { ...entry.raw };
  for (const [key, value] of Object.entries(entry.raw)) {
    const isLabelMeta = key.endsWith("-metadata") && !key.startsWith(MASK_KEY) && (value as { "class-name"?: unknown } | null)?.["class-name"] !== undefined;
    if (isLabelMeta) {
      delete out[key];
      delete out[key.slice(0, -"-metadata".length)];
    }
    if (label === "normal" && key.startsWith(MASK_KEY)) delete out[key];
  }
  return { ...out, ...classification(label, now) };
}

/** A new entry for an uploaded image, labeled or not. */
export function newEntry(sourceRef: string, label: Label, now = new Date()): Record<string, unknown> {
  return label ? { "source-ref": sourceRef, ...classification(label, now) } : { "source-ref": sourceRef };
}

/** An anomaly entry with a segmentation mask: colours index the anomaly types. */
export function withMask(entry: Entry, maskRef: string, types: { name: string; colour: string }[], now = new Date()): Record<string, unknown> {
  const colourMap: Record<string, { "class-name": string; "hex-color": string }> = { "0": BACKGROUND };
  types.forEach((t, i) => (colourMap[String(i + 1)] = { "class-name": t.name, "hex-color": t.colour }));
  return {
    ...withLabel(entry, "anomaly", now),
    [MASK_KEY]: maskRef,
    [`${MASK_KEY}-metadata`]: {
      "internal-color-map": colourMap,
      type: "groundtruth/semantic-segmentation",
      "human-annotated": "yes",
      "creation-date": now.toISOString(),
      "job-name": "labeling-job/openlookout-console",
    },
  };
}

/** The UpdateDatasetEntries body: JSON lines. */
export function changes(entries: Record<string, unknown>[]): Uint8Array {
  return new TextEncoder().encode(entries.map((e) => JSON.stringify(e)).join("\n") + "\n");
}

export function parseS3Uri(uri: string): { bucket: string; key: string } {
  const match = /^s3:\/\/([^/]+)\/(.+)$/.exec(uri);
  if (!match) throw new Error(`not an S3 URI: ${uri}`);
  return { bucket: match[1], key: match[2] };
}

/** The S3 key of an upload: a folder per project, dataset and upload batch (two drops of files with
 * the same names must not overwrite each other), the file's own name or relative path kept. */
export function uploadKey(project: string, datasetType: string, batch: string, path: string): string {
  const clean = path.replace(/^\/+/, "").replace(/[^\w.\-\/]/g, "_");
  return `console/${project}/${datasetType}/${batch}/${clean}`;
}

/** Paths made unique within one upload: files picked from different folders may share a name. */
export function uniquePaths(paths: string[]): string[] {
  const seen = new Set<string>();
  return paths.map((path) => {
    let candidate = path;
    for (let n = 2; seen.has(candidate); n++) candidate = path.replace(/(\.[^./]*)?$/, `-${n}$1`);
    seen.add(candidate);
    return candidate;
  });
}
