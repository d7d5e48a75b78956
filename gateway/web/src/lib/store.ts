// A minimal observable store: the app's state lives in one immutable value;
// components read slices with `useStore` and re-render only when their
// slice changes (compared by identity, so updates replace what they touch).
// Changes apply at once; listeners hear of them once per animation frame,
// so a burst of streamed chunks costs one render, not one per chunk.

import { useEffect, useReducer, useRef } from "preact/hooks";

export class Store<S> {
  private listeners = new Set<() => void>();
  private scheduled = false;

  constructor(private state: S) {}

  get(): S {
    return this.state;
  }

  set(update: Partial<S> | ((state: S) => Partial<S>)): void {
    const patch = typeof update === "function" ? update(this.state) : update;
    this.state = { ...this.state, ...patch };
    if (this.scheduled) return;
    this.scheduled = true;
    const notify = () => {
      this.scheduled = false;
      for (const listener of this.listeners) listener();
    };
    if (typeof requestAnimationFrame === "function" && !document.hidden) requestAnimationFrame(notify);
    else setTimeout(notify, 16);
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

export function useStore<S, T>(store: Store<S>, select: (state: S) => T): T {
  const [, rerender] = useReducer((n: number) => n + 1, 0);
  const selected = select(store.get());
  const latest = useRef({ select, selected });
  latest.current = { select, selected };
  useEffect(
    () =>
      store.subscribe(() => {
        const { select: current, selected: seen } = latest.current;
        if (!Object.is(current(store.get()), seen)) rerender(0);
      }),
    [store],
  );
  return selected;
}
