// Starting a session: a directory of the workspace (browsed on the fs
// channel), the model, skills, and whether it starts read-only.

import type { VNode } from "preact";
import { useEffect, useState } from "preact/hooks";
import type { Client } from "../lib/client";
import type { FileEntry, FsReply } from "../lib/protocol";
import { useStore } from "../lib/store";

export function NewSession({ client }: { client: Client }): VNode {
  const models = useStore(client.store, (s) => s.models);
  const skills = useStore(client.store, (s) => s.skills);
  const root = client.workspaceRoot();
  const [dir, setDir] = useState("");
  const [subdirs, setSubdirs] = useState<FileEntry[] | null>(null);
  const [listError, setListError] = useState<string | null>(null);
  const [model, setModel] = useState("");
  const [chosen, setChosen] = useState<string[]>(skills?.default_skills ?? []);
  const [typedSkills, setTypedSkills] = useState((skills?.default_skills ?? []).join(", "));
  const [readOnly, setReadOnly] = useState(false);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    let live = true;
    setSubdirs(null);
    const request = dir ? { action: "list" as const, path: dir } : { action: "list" as const };
    client.socket
      .fs<Extract<FsReply, { type: "file_list" }>>(request)
      .then((reply) => {
        if (!live) return;
        setSubdirs(reply.entries.filter((e) => e.is_dir).sort((a, b) => a.name.localeCompare(b.name)));
        setListError(null);
      })
      .catch((error: Error) => live && setListError(error.message));
    return () => {
      live = false;
    };
  }, [dir]);

  const cwd = dir ? `${root.replace(/\/$/, "")}/${dir}` : root;
  const create = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    const list = skills?.available ? chosen : typedSkills.split(",").map((s) => s.trim()).filter(Boolean);
    await client.newSession({ cwd, model: model || null, skills: list, readOnly });
    setBusy(false);
  };
  const up = dir.includes("/") ? dir.slice(0, dir.lastIndexOf("/")) : "";

  return (
    <div class="dialog-backdrop" role="dialog" aria-modal="true" aria-label="New session" onClick={(e) => e.target === e.currentTarget && client.showNewSession(false)}>
      <form class="dialog" onSubmit={create}>
        <h2>New session</h2>
        <fieldset>
          <legend>Directory</legend>
          <div class="cwd" data-cwd={cwd}><code>{cwd || "(the server's workspace)"}</code></div>
          <ul class="dir-list">
            {dir && (
              <li><button type="button" class="link" onClick={() => setDir(up)}>↑ ..</button></li>
            )}
            {subdirs === null && !listError && <li class="muted">Loading…</li>}
            {listError && <li class="error-line">{listError}</li>}
            {subdirs?.map((d) => (
              <li key={d.path}><button type="button" class="link" onClick={() => setDir(d.path)}>{d.name}/</button></li>
            ))}
            {subdirs?.length === 0 && <li class="muted">No subdirectories.</li>}
          </ul>
        </fieldset>
        <label>
          Model
          <select aria-label="Model" value={model} onChange={(e) => setModel((e.target as HTMLSelectElement).value)}>
            <option value="">Default{models?.default_provider ? ` (${models.default_provider})` : ""}</option>
            {models?.providers.flatMap((p) =>
              [p.default_model, ...p.models.filter((m) => m !== p.default_model)].filter(Boolean).map((m) => (
                <option key={`${p.provider}/${m}`} value={`${p.provider}/${m}`}>{p.provider}/{m}</option>
              )),
            )}
          </select>
        </label>
        <fieldset>
          <legend>Skills</legend>
          {skills?.available ? (
            skills.available.length ? (
              skills.available.map((name) => (
                <label key={name} class="check">
                  <input
                    type="checkbox"
                    checked={chosen.includes(name)}
                    onChange={(e) => setChosen((e.target as HTMLInputElement).checked ? [...chosen, name] : chosen.filter((c) => c !== name))}
                  />
                  {name}
                </label>
              ))
            ) : (
              <p class="muted small">No skills installed on the server.</p>
            )
          ) : (
            <input aria-label="Skills" placeholder="skill names, comma separated" value={typedSkills} onInput={(e) => setTypedSkills((e.target as HTMLInputElement).value)} />
          )}
        </fieldset>
        <label class="check">
          <input type="checkbox" checked={readOnly} onChange={(e) => setReadOnly((e.target as HTMLInputElement).checked)} />
          Start read-only (only tools that change nothing)
        </label>
        <div class="row end">
          <button type="button" onClick={() => client.showNewSession(false)}>Close</button>
          <button type="submit" class="primary" disabled={busy}>{busy ? "Starting…" : "Start session"}</button>
        </div>
      </form>
    </div>
  );
}
