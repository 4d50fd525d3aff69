// The OpenLookout console: one page, hash routes, every read and write through the public L4V API.
import { Component, render, type ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";
import { DescribeProjectCommand, type DatasetMetadata } from "@aws-sdk/client-lookoutvision";
import { defaultSettings, forgetSettings, loadSettings, loadSiteConfig, lv, saveSettings, type Settings } from "./api";
import { DatasetView, NoDataset } from "./dataset";
import { ModelPage, ModelsView } from "./models";
import { ProjectsPage } from "./projects";
import { Card, setReporter, useAction } from "./ui";

function useHash(): string[] {
  const read = () => location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  const [parts, setParts] = useState(read());
  useEffect(() => {
    const onChange = () => setParts(read());
    addEventListener("hashchange", onChange);
    return () => removeEventListener("hashchange", onChange);
  }, []);
  return parts;
}

function ProjectPage({ project, tab }: { project: string; tab: string }) {
  const [datasets, setDatasets] = useState<DatasetMetadata[] | null>(null);
  const [, run] = useAction();
  const load = () =>
    run(async () => {
      const { ProjectDescription } = await lv().send(new DescribeProjectCommand({ ProjectName: project }));
      setDatasets(ProjectDescription?.Datasets ?? []);
    });
  useEffect(() => void load(), [project]);
  const base = `#/projects/${encodeURIComponent(project)}`;
  const has = (type: string) => datasets?.some((d) => d.DatasetType === type);
  return (
    <div>
      <h1><a href="#/">Projects</a> / {project}</h1>
      <nav class="tabs">
        {["train", "test", "models"].map((t) => (
          <a key={t} id={`tab-${t}`} class={tab === t ? "active" : ""} href={`${base}/${t}`}>{t === "models" ? "Models" : `${t[0].toUpperCase()}${t.slice(1)} dataset`}</a>
        ))}
      </nav>
      {datasets === null ? <p>Loading…</p> : tab === "models" ? <ModelsView project={project} /> : has(tab) ? (
        <DatasetView key={tab} project={project} type={tab} onDeleted={load} />
      ) : (
        <NoDataset project={project} type={tab} onCreated={load} />
      )}
    </div>
  );
}

function SettingsForm({ onClose }: { onClose: () => void }) {
  const [s, setS] = useState<Settings>(loadSettings());
  const field = (key: keyof Settings, label: string, secret = false) => {
    const onInput = (e: { currentTarget: HTMLInputElement }) => setS({ ...s, [key]: e.currentTarget.value });
    return (
      <label>
        {label}
        {secret ? <input type="password" value={String(s[key])} onInput={onInput} /> : <input type="text" value={String(s[key])} onInput={onInput} />}
      </label>
    );
  };
  return (
    <Card title="Connection">
      <form class="settings" onSubmit={(e) => (e.preventDefault(), saveSettings(s), onClose())}>
        {field("endpoint", "API endpoint")}
        {field("region", "Region")}
        {field("accessKeyId", "Access key ID")}
        {field("secretAccessKey", "Secret access key", true)}
        {field("sessionToken", "Session token (optional)", true)}
        {field("bucket", "S3 bucket for images and models")}
        {field("artifactsBucket", "Artifacts bucket (ONNX exports)")}
        <label>
          <input type="checkbox" checked={s.apiGateway} onChange={(e) => setS({ ...s, apiGateway: e.currentTarget.checked })} /> Deployed stack (API Gateway, IAM signing)
        </label>
        <p class="muted">Kept in this tab's sessionStorage only; sent nowhere but the endpoint, as SigV4 signatures.</p>
        <div class="row">
          <button>Save</button>
          <button type="button" onClick={() => setS(defaultSettings())}>Defaults</button>
          <button type="button" onClick={onClose}>Cancel</button>
          <button type="button" id="sign-out" onClick={() => (forgetSettings(), location.reload())}>Forget these keys</button>
        </div>
      </form>
    </Card>
  );
}

class ErrorBoundary extends Component<{ children: ComponentChildren }, { error: string | null }> {
  state = { error: null as string | null };
  componentDidCatch(error: unknown) {
    this.setState({ error: String((error as Error)?.stack ?? error) });
  }
  render() {
    if (this.state.error) {
      return (
        <div class="banner error">
          <p>This page failed: {this.state.error}</p>
          <button onClick={() => ((location.hash = "#/"), this.setState({ error: null }))}>Back to projects</button>
        </div>
      );
    }
    return this.props.children;
  }
}

function App() {
  const parts = useHash();
  const [error, setError] = useState<string | null>(null);
  const [editing, setEditing] = useState(false);
  useEffect(() => setReporter(setError), []);
  useEffect(() => setError(null), [parts.join("/")]);
  const [, project, tab, version] = parts;
  let page;
  if (parts[0] === "projects" && project && tab === "models" && version) page = <ModelPage project={project} version={version} />;
  else if (parts[0] === "projects" && project) page = <ProjectPage project={project} tab={tab ?? "train"} />;
  else page = <ProjectsPage />;
  return (
    <>
      <header>
        <a href="#/" class="brand">OpenLookout</a>
        <span class="muted">anomaly detection console</span>
        <span class="spacer" />
        <button class="small" onClick={() => setEditing(!editing)}>Connection</button>
      </header>
      <main>
        {error && (
          <div class="banner error" id="error" role="alert">
            {error} <button class="small" onClick={() => setError(null)}>×</button>
          </div>
        )}
        {editing && <SettingsForm onClose={() => (setEditing(false), location.reload())} />}
        <ErrorBoundary key={parts.join("/")}>{page}</ErrorBoundary>
      </main>
    </>
  );
}

addEventListener("unhandledrejection", (e) => console.error(e.reason));
const root = document.getElementById("app")!;
void loadSiteConfig().then(() => {
  root.textContent = ""; // the "Loading…" placeholder: render() would diff against it and keep it
  render(<App />, root);
});
