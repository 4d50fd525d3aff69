import { useEffect, useState } from "preact/hooks";
import { CreateProjectCommand, DeleteProjectCommand, ListProjectsCommand, type ProjectMetadata } from "@aws-sdk/client-lookoutvision";
import { lv } from "./api";
import { Card, useAction, when } from "./ui";

export function ProjectsPage() {
  const [projects, setProjects] = useState<ProjectMetadata[] | null>(null);
  const [name, setName] = useState("");
  const [busy, run] = useAction();

  const load = () =>
    run(async () => {
      const all: ProjectMetadata[] = [];
      let token: string | undefined;
      do {
        const page = await lv().send(new ListProjectsCommand({ NextToken: token, MaxResults: 100 }));
        all.push(...(page.Projects ?? []));
        token = page.NextToken;
      } while (token);
      setProjects(all);
    }, false);
  useEffect(() => void load(), []);

  const create = (event: Event) => {
    event.preventDefault();
    void run(async () => {
      await lv().send(new CreateProjectCommand({ ProjectName: name.trim() }));
      location.hash = `#/projects/${encodeURIComponent(name.trim())}`;
    });
  };
  const remove = (project: string) =>
    confirm(`Delete project ${project}? Its datasets must be deleted first.`) &&
    void run(async () => {
      await lv().send(new DeleteProjectCommand({ ProjectName: project }));
      await load();
    });

  return (
    <div>
      <Card title="Create a project">
        <form onSubmit={create} class="row">
          <input name="project-name" placeholder="project name" value={name} onInput={(e) => setName(e.currentTarget.value)} required pattern="[a-zA-Z0-9][a-zA-Z0-9_\-]*" maxLength={255} />
          <button disabled={busy}>Create project</button>
        </form>
      </Card>
      <Card title="Projects">
        {projects === null ? <p>Loading…</p> : projects.length === 0 ? <p>No project yet.</p> : (
          <table class="list" id="projects">
            <thead><tr><th>Name</th><th>Created</th><th /></tr></thead>
            <tbody>
              {projects.map((p) => (
                <tr key={p.ProjectName}>
                  <td><a href={`#/projects/${encodeURIComponent(p.ProjectName ?? "")}`}>{p.ProjectName}</a></td>
                  <td>{when(p.CreationTimestamp)}</td>
                  <td><button class="danger" onClick={() => remove(p.ProjectName ?? "")}>Delete</button></td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Card>
    </div>
  );
}
