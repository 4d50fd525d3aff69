import { useEffect, useState } from "preact/hooks";
import {
  CreateDatasetCommand,
  DeleteDatasetCommand,
  DescribeDatasetCommand,
  ListDatasetEntriesCommand,
  UpdateDatasetEntriesCommand,
  type DatasetDescription,
} from "@aws-sdk/client-lookoutvision";
import { CreateBucketCommand, HeadBucketCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { imageUrl, lv, s3, settings } from "./api";
import { changes, newEntry, parseEntry, parseS3Uri, uniquePaths, uploadKey, withLabel, type Entry, type Label } from "./manifest";
import { MaskEditor } from "./mask";
import { Card, Status, sleep, useAction } from "./ui";

const PAGE_SIZE = 48;
type Filter = "all" | "normal" | "anomaly" | "unlabeled";

function filterParams(filter: Filter): { Labeled?: boolean; AnomalyClass?: string } {
  if (filter === "unlabeled") return { Labeled: false };
  if (filter === "all") return {};
  return { AnomalyClass: filter };
}

/** Waits while a dataset is being created or updated, so the next read sees the change. */
async function settled(project: string, type: string): Promise<DatasetDescription> {
  for (;;) {
    const { DatasetDescription: d } = await lv().send(new DescribeDatasetCommand({ ProjectName: project, DatasetType: type }));
    if (!d?.Status?.endsWith("IN_PROGRESS")) {
      if (d?.Status?.endsWith("FAILED")) throw new Error(`The ${type} dataset is ${d.Status}: ${d.StatusMessage}`);
      return d!;
    }
    await sleep(500);
  }
}

async function ensureBucket(bucket: string): Promise<void> {
  try {
    await s3().send(new HeadBucketCommand({ Bucket: bucket }));
  } catch {
    await s3().send(new CreateBucketCommand({ Bucket: bucket }));
  }
}

/** Uploads files to S3, four at a time, then adds them to the dataset as entries. */
async function upload(project: string, type: string, files: File[], label: Label, progress: (done: number) => void): Promise<void> {
  const bucket = settings().bucket;
  await ensureBucket(bucket);
  const refs: string[] = [];
  const batch = new Date().toISOString().replace(/[:.]/g, "-");
  const paths = uniquePaths(files.map((f) => (f as File & { webkitRelativePath?: string }).webkitRelativePath || f.name));
  let next = 0;
  const worker = async () => {
    while (next < files.length) {
      const index = next++;
      const file = files[index];
      const key = uploadKey(project, type, batch, paths[index]);
      const body = new Uint8Array(await file.arrayBuffer());
      await s3().send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: file.type || "image/png" }));
      refs.push(`s3://${bucket}/${key}`);
      progress(refs.length);
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  refs.sort();
  await lv().send(new UpdateDatasetEntriesCommand({ ProjectName: project, DatasetType: type, Changes: changes(refs.map((r) => newEntry(r, label))) }));
  await settled(project, type);
}

export function NoDataset({ project, type, onCreated }: { project: string; type: string; onCreated: () => void }) {
  const [manifest, setManifest] = useState("");
  const [busy, run] = useAction();
  const create = (source?: string) =>
    run(async () => {
      const location = source ? parseS3Uri(source) : null;
      await lv().send(
        new CreateDatasetCommand({
          ProjectName: project,
          DatasetType: type,
          DatasetSource: location ? { GroundTruthManifest: { S3Object: { Bucket: location.bucket, Key: location.key } } } : undefined,
        }),
      );
      await settled(project, type);
      onCreated();
    });
  return (
    <Card title={`No ${type} dataset yet`}>
      <p>
        <button id={`create-${type}`} disabled={busy} onClick={() => create()}>Create an empty {type} dataset</button> and upload images into it, or import a manifest:
      </p>
      <div class="row">
        <input placeholder="s3://bucket/path/train.manifest" value={manifest} onInput={(e) => setManifest(e.currentTarget.value)} />
        <button disabled={busy || !manifest} onClick={() => create(manifest)}>Create from manifest</button>
      </div>
    </Card>
  );
}

export function DatasetView({ project, type, onDeleted }: { project: string; type: string; onDeleted: () => void }) {
  const [desc, setDesc] = useState<DatasetDescription | null>(null);
  const [filter, setFilter] = useState<Filter>("all");
  const [anomalyType, setAnomalyType] = useState("");
  const [tokens, setTokens] = useState<(string | undefined)[]>([undefined]); // one per page seen
  const [page, setPage] = useState<{ entries: Entry[]; urls: string[]; next?: string }>({ entries: [], urls: [] });
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [uploadLabel, setUploadLabel] = useState<Label>(type === "train" ? "normal" : null);
  const [progress, setProgress] = useState("");
  const [dragging, setDragging] = useState(false);
  const [painting, setPainting] = useState<number | null>(null); // index in page.entries
  const [busy, run] = useAction();

  const load = (token?: string) =>
    run(async () => {
      setDesc(await settled(project, type));
      const result = await lv().send(
        new ListDatasetEntriesCommand({ ProjectName: project, DatasetType: type, MaxResults: PAGE_SIZE, NextToken: token, ...filterParams(filter) }),
      );
      const entries = (result.DatasetEntries ?? []).map(parseEntry);
      setPage({ entries, urls: await Promise.all(entries.map((e) => imageUrl(e.sourceRef))), next: result.NextToken });
      setSelected(new Set());
    }, false);
  useEffect(() => {
    setTokens([undefined]);
    void load();
  }, [project, type, filter]);

  const label = (value: "normal" | "anomaly") =>
    run(async () => {
      const lines = page.entries.filter((e) => selected.has(e.sourceRef)).map((e) => withLabel(e, value));
      await lv().send(new UpdateDatasetEntriesCommand({ ProjectName: project, DatasetType: type, Changes: changes(lines) }));
      await settled(project, type);
      await load(tokens[tokens.length - 1]);
    });

  const addFiles = (list: FileList | null) => {
    const files = Array.from(list ?? []).filter((f) => /\.(png|jpe?g)$/i.test(f.name));
    if (files.length === 0) return;
    void run(async () => {
      setProgress(`uploading 0 / ${files.length}`);
      await upload(project, type, files, uploadLabel, (done) => setProgress(`uploading ${done} / ${files.length}`));
      setProgress(`added ${files.length} images`);
      await load();
    });
  };

  const remove = () =>
    confirm(`Delete the ${type} dataset of ${project}?`) &&
    void run(async () => {
      await lv().send(new DeleteDatasetCommand({ ProjectName: project, DatasetType: type }));
      onDeleted();
    });

  const stats = desc?.ImageStats;
  const shown = anomalyType ? page.entries.filter((e) => e.anomalyTypes.includes(anomalyType)) : page.entries;
  const types = [...new Set(page.entries.flatMap((e) => e.anomalyTypes))];
  const toggle = (ref: string) => {
    const next = new Set(selected);
    next.has(ref) ? next.delete(ref) : next.add(ref);
    setSelected(next);
  };

  const closeEditor = (saved: boolean) => {
    setPainting(null);
    if (saved) void run(async () => (await settled(project, type), await load(tokens[tokens.length - 1])), false);
  };

  return (
    <div>
      {painting !== null && page.entries[painting] && (
        <MaskEditor project={project} type={type} entry={page.entries[painting]} imageUrl={page.urls[painting]} onClose={closeEditor} />
      )}
      <Card title={`${type} dataset`}>
        <div class="stats" id="image-stats">
          <span>Status <Status value={desc?.Status} /></span>
          <span>Total <b data-stat="total">{stats?.Total ?? "…"}</b></span>
          <span>Labeled <b data-stat="labeled">{stats?.Labeled ?? "…"}</b></span>
          <span>Normal <b data-stat="normal">{stats?.Normal ?? "…"}</b></span>
          <span>Anomaly <b data-stat="anomaly">{stats?.Anomaly ?? "…"}</b></span>
          <button class="danger small" onClick={remove}>Delete dataset</button>
        </div>
        {desc?.StatusMessage && <p class="muted">{desc.StatusMessage}</p>}
        <div
          class={`drop ${dragging ? "over" : ""}`}
          onDragOver={(e) => (e.preventDefault(), setDragging(true))}
          onDragLeave={() => setDragging(false)}
          onDrop={(e) => (e.preventDefault(), setDragging(false), addFiles(e.dataTransfer?.files ?? null))}
        >
          <p>Drop PNG or JPEG images here, or <label class="link">choose files<input id="upload" type="file" multiple accept="image/png,image/jpeg" hidden onChange={(e) => addFiles(e.currentTarget.files)} /></label>{" "}
            (<label class="link">a folder<input type="file" hidden {...{ webkitdirectory: "" }} onChange={(e) => addFiles(e.currentTarget.files)} /></label>)</p>
          <p>
            Label the uploaded images{" "}
            <select id="upload-label" value={uploadLabel ?? ""} onChange={(e) => setUploadLabel((e.currentTarget.value || null) as Label)}>
              <option value="">unlabeled</option>
              <option value="normal">normal</option>
              <option value="anomaly">anomaly</option>
            </select>
            <span id="upload-progress" class="muted"> {progress}</span>
          </p>
        </div>
      </Card>
      <Card title="Images">
        <div class="row toolbar">
          <select id="filter" value={filter} onChange={(e) => setFilter(e.currentTarget.value as Filter)}>
            <option value="all">all images</option>
            <option value="normal">normal</option>
            <option value="anomaly">anomaly</option>
            <option value="unlabeled">unlabeled</option>
          </select>
          <select id="anomaly-type" value={anomalyType} onChange={(e) => setAnomalyType(e.currentTarget.value)}>
            <option value="">any anomaly type</option>
            {types.map((t) => <option key={t} value={t}>{t}</option>)}
          </select>
          <span class="muted">{selected.size} selected</span>
          <button id="select-page" onClick={() => setSelected(new Set(shown.map((e) => e.sourceRef)))}>Select page</button>
          <button id="label-normal" disabled={busy || selected.size === 0} onClick={() => label("normal")}>Label normal</button>
          <button id="label-anomaly" disabled={busy || selected.size === 0} onClick={() => label("anomaly")}>Label anomaly</button>
          <button id="paint-mask" disabled={busy || selected.size !== 1} onClick={() => setPainting(page.entries.findIndex((e) => selected.has(e.sourceRef)))}>Paint mask</button>
          <span class="spacer" />
          <button disabled={busy || tokens.length < 2} onClick={() => { const t = tokens.slice(0, -1); setTokens(t); void load(t[t.length - 1]); }}>Previous</button>
          <span class="muted">page {tokens.length}</span>
          <button id="next-page" disabled={busy || !page.next} onClick={() => { setTokens([...tokens, page.next]); void load(page.next); }}>Next</button>
        </div>
        <div class="grid" id="grid">
          {shown.map((entry) => {
            const url = page.urls[page.entries.indexOf(entry)];
            const isSelected = selected.has(entry.sourceRef);
            return (
              <figure key={entry.sourceRef} class={`thumb ${isSelected ? "selected" : ""}`} data-ref={entry.sourceRef} data-label={entry.label ?? "unlabeled"} onClick={() => toggle(entry.sourceRef)}>
                <img src={url} loading="lazy" alt={entry.sourceRef} />
                <figcaption>
                  <span class={`label ${entry.label ?? "none"}`}>{entry.label ?? "unlabeled"}</span>
                  {entry.anomalyTypes.map((t) => <span key={t} class="type">{t}</span>)}
                  <span class="name">{entry.sourceRef.split("/").pop()}</span>
                </figcaption>
              </figure>
            );
          })}
          {shown.length === 0 && !busy && <p class="muted">No image here.</p>}
        </div>
      </Card>
    </div>
  );
}
