// Small shared pieces: the error banner, a busy flag per action, status badges.
import { useEffect, useRef, useState } from "preact/hooks";
import type { ComponentChildren } from "preact";
import { describeError } from "./api";

type Reporter = (message: string | null) => void;
let reporter: Reporter = () => {};

export function setReporter(r: Reporter): void {
  reporter = r;
}

/** Shows an API error in the banner instead of failing silently (or blanking the page). */
export function report(error: unknown): void {
  console.error(error);
  reporter(describeError(error));
}

export function clearError(): void {
  reporter(null);
}

/** Runs an async action with a busy flag; errors go to the banner. A user's action clears the
 * banner first; a background reload (`clear` false) must not hide an error the user has not read.
 * Nothing runs, or reports, once the component is gone. */
export function useAction(): [boolean, (action: () => Promise<void>, clear?: boolean) => Promise<void>] {
  const [busy, setBusy] = useState(false);
  const live = useRef(true);
  useEffect(() => () => void (live.current = false), []);
  const run = async (action: () => Promise<void>, clear = true) => {
    if (!live.current) return;
    setBusy(true);
    if (clear) clearError();
    try {
      await action();
    } catch (error) {
      if (live.current) report(error);
    } finally {
      if (live.current) setBusy(false);
    }
  };
  return [busy, run];
}

export function Status({ value }: { value?: string }) {
  const kind = !value ? "" : /FAILED/.test(value) ? "bad" : /IN_PROGRESS|ING(_|$)/.test(value) ? "busy" : "good";
  return <span class={`status ${kind}`} data-status={value}>{value ?? "…"}</span>;
}

export function Card({ title, children }: { title: string; children: ComponentChildren }) {
  return (
    <section class="card">
      <h2>{title}</h2>
      {children}
    </section>
  );
}

export function when(date?: Date): string {
  return date ? date.toLocaleString() : "";
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
