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

/**
 * Subscribes `changed` to `store`, to be called whenever `latest().select`
 * no longer gives `latest().selected`: the slice a component rendered. It
 * also checks once at subscription, since a component subscribes after it
 * rendered, and a change that landed in between was announced to no one
 * (without this check, a component mounted just before an update would keep
 * showing the old state until something else changed).
 */
export function follow<S, T>(
  store: Store<S>,
  latest: () => { select: (state: S) => T; selected: T },
  changed: () => void,
): () => void {
  const check = () => {
    const { select, selected } = latest();
    if (!Object.is(select(store.get()), selected)) changed();
  };
  const unsubscribe = store.subscribe(check);
  check();
  return unsubscribe;
}

export function useStore<S, T>(store: Store<S>, select: (state: S) => T): T {
  const [, rerender] = useReducer((n: number) => n + 1, 0);
  const selected = select(store.get());
  const latest = useRef({ select, selected });
  latest.current = { select, selected };
  useEffect(() => follow(store, () => latest.current, () => rerender(0)), [store]);
  return selected;
}
