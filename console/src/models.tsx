import { useEffect, useRef, useState } from "preact/hooks";
import {
  CreateModelCommand,
  DeleteModelCommand,
  DescribeModelCommand,
  DetectAnomaliesCommand,
  ListModelsCommand,
  StartModelCommand,
  StopModelCommand,
  type DetectAnomalyResult,
  type ModelDescription,
  type ModelMetadata,
} from "@aws-sdk/client-lookoutvision";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import { lv, s3, settings } from "./api";
import { EvaluationView } from "./evaluationView";
import { Card, Status, report, sleep, useAction, when } from "./ui";

const TRANSITIONAL = /^(TRAINING|STARTING_HOSTING|STOPPING_HOSTING|DELETING)$/;

function parseTags(text: string): { Key: string; Value: string }[] {
  return text
    .split(",")
    .map((pair) => pair.trim())
    .filter(Boolean)
    .map((pair) => {
      const [key, ...value] = pair.split("=");
      return { Key: key.trim(), Value: value.join("=").trim() };
    });
}

/** Polls `read` every second while `busy` says the answer is still moving; stops on unmount. */
function usePolling<T>(read: () => Promise<T>, busy: (value: T) => boolean, deps: unknown[]): [T | null, () => void] {
  const [value, setValue] = useState<T | null>(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    (async () => {
      try {
        for (;;) {
          const next = await read();
          if (!live) return;
          setValue(next);
          if (!busy(next)) return;
          await sleep(1000);
        }
      } catch (error) {
        if (live) report(error);
      }
    })();
    return () => void (live = false);
  }, [...deps, tick]);
  return [value, () => setTick((t) => t + 1)];
}

export function ModelsView({ project }: { project: string }) {
  const [description, setDescription] = useState("");
  const [prefix, setPrefix] = useState(`models/${project}/`);
  const [tags, setTags] = useState("");
  const [busy, run] = useAction();
  const [models, refresh] = usePolling(
    async () => (await lv().send(new ListModelsCommand({ ProjectName: project }))).Models ?? [],
    (list: ModelMetadata[]) => list.some((m) => TRANSITIONAL.test(m.Status ?? "")),
    [project],
  );

  const train = (event: Event) => {
    event.preventDefault();
    void run(async () => {
      await lv().send(
        new CreateModelCommand({
          ProjectName: project,
          Description: description || undefined,
          OutputConfig: { S3Location: { Bucket: settings().bucket, Prefix: prefix } },
          Tags: tags ? parseTags(tags) : undefined,
        }),
      );
      refresh();
    });
  };

  return (
    <div>
      <Card title="Train a model">
        <form onSubmit={train} class="row">
          <input id="model-description" placeholder="description" value={description} onInput={(e) => setDescription(e.currentTarget.value)} />
          <label>output s3://{settings().bucket}/<input value={prefix} onInput={(e) => setPrefix(e.currentTarget.value)} /></label>
          <input placeholder="tags: key=value, key=value" value={tags} onInput={(e) => setTags(e.currentTarget.value)} />
          <button id="train" disabled={busy}>Train model</button>
        </form>
      </Card>
      <Card title="Models">
        {models === null ? <p>Loading…</p> : models.length === 0 ? <p>No model yet.</p> : (
          <table class="list" id="models">
            <thead><tr><th>Version</th><th>Status</th><th>Message</th><th>F1</th><th>Created</th></tr></thead>
            <tbody>
              {models.map((m) => (
                <tr key={m.ModelVersion}>
                  <td><a href={`#/projects/${encodeURIComponent(project)}/models/${m.ModelVersion}`}>version {m.ModelVersion}</a></td>
                  <td><Status value={m.Status} /></td>
                  <td class="muted">{m.StatusMessage}</td>
                  <td>{m.Performance?.F1Score?.toFixed(3) ?? ""}</td>
                  <td>{when(m.CreationTimestamp)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Card>
    </div>
  );
}

export function ModelPage({ project, version }: { project: string; version: string }) {
  const [busy, run] = useAction();
  const [model, refresh] = usePolling(
    async () => (await lv().send(new DescribeModelCommand({ ProjectName: project, ModelVersion: version }))).ModelDescription,
    (m: ModelDescription | undefined) => TRANSITIONAL.test(m?.Status ?? ""),
    [project, version],
  );
  const act = (command: () => Promise<unknown>) => run(async () => void (await command(), refresh()));
  const perf = model?.Performance;
  const status = model?.Status ?? "";

  const base = `#/projects/${encodeURIComponent(project)}`;
  return (
    <div>
      <h1><a href="#/">Projects</a> / <a href={`${base}/train`}>{project}</a> / <a href={`${base}/models`}>Models</a> / version {version}</h1>
      <Card title={`Model version ${version}`}>
        <div class="stats" id="model-status">
          <span>Status <Status value={model?.Status} /></span>
          <span class="muted">{model?.StatusMessage}</span>
        </div>
        <table class="kv">
          <tbody>
            <tr><th>F1 score</th><td data-metric="f1">{perf?.F1Score?.toFixed(3) ?? "–"}</td></tr>
            <tr><th>Precision</th><td data-metric="precision">{perf?.Precision?.toFixed(3) ?? "–"}</td></tr>
            <tr><th>Recall</th><td data-metric="recall">{perf?.Recall?.toFixed(3) ?? "–"}</td></tr>
            <tr><th>Description</th><td>{model?.Description}</td></tr>
            <tr><th>Created</th><td>{when(model?.CreationTimestamp)}</td></tr>
            <tr><th>Evaluated</th><td>{when(model?.EvaluationEndTimestamp)}</td></tr>
            <tr><th>Evaluation result</th><td>{model?.EvaluationResult ? `s3://${model.EvaluationResult.Bucket}/${model.EvaluationResult.Key}` : "–"}</td></tr>
            <tr><th>Output</th><td>{model?.OutputConfig?.S3Location ? `s3://${model.OutputConfig.S3Location.Bucket}/${model.OutputConfig.S3Location.Prefix ?? ""}` : ""}</td></tr>
          </tbody>
        </table>
        <div class="row">
          <button id="start-model" disabled={busy || !/^(TRAINED|HOSTING_FAILED)$/.test(status)} onClick={() => act(() => lv().send(new StartModelCommand({ ProjectName: project, ModelVersion: version, MinInferenceUnits: 1 })))}>Start model</button>
          <button id="stop-model" disabled={busy || status !== "HOSTED"} onClick={() => act(() => lv().send(new StopModelCommand({ ProjectName: project, ModelVersion: version })))}>Stop model</button>
          <button class="danger" disabled={busy || TRANSITIONAL.test(status) || status === "HOSTED"} onClick={() =>
            confirm(`Delete model version ${version}?`) &&
            run(async () => {
              await lv().send(new DeleteModelCommand({ ProjectName: project, ModelVersion: version }));
              location.hash = `#/projects/${encodeURIComponent(project)}/models`;
            })}>Delete model</button>
        </div>
      </Card>
      {/^(TRAINED|HOSTED|STARTING_HOSTING|STOPPING_HOSTING|HOSTING_FAILED)$/.test(status) && <OnnxExport project={project} version={version} />}
      {status === "HOSTED" ? <TrialDetection project={project} version={version} /> : <Card title="Trial detection"><p class="muted">Start the model to try it on images.</p></Card>}
      {model?.EvaluationManifest && <EvaluationView model={model} />}
    </div>
  );
}

/** Hands bytes to the browser as a file download. */
function saveFile(name: string, bytes: Uint8Array, type: string): void {
  const url = URL.createObjectURL(new Blob([new Uint8Array(bytes)], { type }));
  const link = Object.assign(document.createElement("a"), { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** The model's ONNX graph and manifest, where training put them in the artifacts bucket (the files
 * `openlookout export` downloads): fetched through the S3 API, signed like every other call. */
function OnnxExport({ project, version }: { project: string; version: string }) {
  const [busy, run] = useAction();
  const prefix = `models/${project}/${version}/`;
  const download = (name: string, saveAs: string, type: string) =>
    run(async () => {
      const bucket = settings().artifactsBucket;
      if (!bucket) throw new Error("No artifacts bucket: set it under Connection (the stack's ArtifactsBucketName output).");
      const { Body } = await s3().send(new GetObjectCommand({ Bucket: bucket, Key: prefix + name }));
      if (!Body) throw new Error(`s3://${bucket}/${prefix}${name} is empty`);
      saveFile(saveAs, await Body.transformToByteArray(), type);
    });
  return (
    <Card title="ONNX export">
      <p class="muted">One self-contained graph (pixels in; score, anomaly map and class map out) and its manifest (input size, threshold, classes): run it wherever onnxruntime runs.</p>
      <div class="row">
        <button id="download-onnx" disabled={busy} onClick={() => download("model.onnx", `${project}-v${version}.onnx`, "application/octet-stream")}>Download model.onnx</button>
        <button id="download-manifest" disabled={busy} onClick={() => download("model.json", `${project}-v${version}.json`, "application/json")}>Download model.json</button>
      </div>
    </Card>
  );
}

interface Trial {
  name: string;
  imageUrl: string;
  maskUrl?: string;
  result?: DetectAnomalyResult;
  error?: string;
}

function TrialDetection({ project, version }: { project: string; version: string }) {
  const [trials, setTrials] = useState<Trial[]>([]);
  const [index, setIndex] = useState(0);
  const [opacity, setOpacity] = useState(0.5);
  const trialsRef = useRef(trials);
  trialsRef.current = trials;

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if ((e.target as HTMLElement).tagName === "INPUT") return;
      if (e.key === "ArrowRight" || e.key === "j") setIndex((i) => Math.min(i + 1, trialsRef.current.length - 1));
      if (e.key === "ArrowLeft" || e.key === "k") setIndex((i) => Math.max(i - 1, 0));
    };
    addEventListener("keydown", onKey);
    return () => removeEventListener("keydown", onKey);
  }, []);

  const detect = async (list: FileList | null) => {
    const files = Array.from(list ?? []).filter((f) => /\.(png|jpe?g)$/i.test(f.name));
    const start = trialsRef.current.length;
    setTrials((t) => [...t, ...files.map((f) => ({ name: f.name, imageUrl: URL.createObjectURL(f) }))]);
    setIndex(start);
    for (const [i, file] of files.entries()) {
      const update = (patch: Partial<Trial>) => setTrials((t) => t.map((x, j) => (j === start + i ? { ...x, ...patch } : x)));
      try {
        const { DetectAnomalyResult: result } = await lv().send(
          new DetectAnomaliesCommand({ ProjectName: project, ModelVersion: version, ContentType: file.type || "image/png", Body: new Uint8Array(await file.arrayBuffer()) }),
        );
        const mask = result?.AnomalyMask;
        update({ result, maskUrl: mask?.length ? URL.createObjectURL(new Blob([new Uint8Array(mask)], { type: "image/png" })) : undefined });
      } catch (error) {
        update({ error: String((error as Error).name ?? "") + ": " + (error as Error).message });
      }
    }
  };

  const current = trials[index];
  const result = current?.result;
  return (
    <Card title="Trial detection">
      <div class="drop" onDragOver={(e) => e.preventDefault()} onDrop={(e) => (e.preventDefault(), void detect(e.dataTransfer?.files ?? null))}>
        <p>Drop images here or <label class="link">choose files<input id="trial-files" type="file" multiple accept="image/png,image/jpeg" hidden onChange={(e) => void detect(e.currentTarget.files)} /></label>. ← → move between them.</p>
      </div>
      {current && (
        <div class="trial" id="trial">
          <div class="viewer">
            <img src={current.imageUrl} alt={current.name} />
            {current.maskUrl && <img class="mask" src={current.maskUrl} style={{ opacity }} alt="anomaly mask" />}
          </div>
          <div>
            <p>{index + 1} / {trials.length}: <b>{current.name}</b></p>
            {current.error && <p class="error">{current.error}</p>}
            {!result && !current.error && <p class="muted">detecting…</p>}
            {result && (
              <>
                <p id="verdict" data-anomalous={String(result.IsAnomalous)} class={result.IsAnomalous ? "label anomaly big" : "label normal big"}>
                  {result.IsAnomalous ? "Anomaly" : "Normal"}
                </p>
                <p>Confidence <b id="confidence">{result.Confidence?.toFixed(3)}</b></p>
                <ul id="anomalies">
                  {(result.Anomalies ?? []).filter((a) => a.Name !== "background").map((a) => (
                    <li key={a.Name}><span class="swatch" style={{ background: a.PixelAnomaly?.Color }} /> {a.Name}: {((a.PixelAnomaly?.TotalPercentageArea ?? 0) * 100).toFixed(2)} % of the image</li>
                  ))}
                </ul>
                <label>Mask opacity <input id="opacity" type="range" min="0" max="1" step="0.05" value={opacity} onInput={(e) => setOpacity(Number(e.currentTarget.value))} /></label>
              </>
            )}
            <div class="row">
              <button disabled={index === 0} onClick={() => setIndex(index - 1)}>Previous</button>
              <button disabled={index >= trials.length - 1} onClick={() => setIndex(index + 1)}>Next</button>
            </div>
          </div>
        </div>
      )}
    </Card>
  );
}
