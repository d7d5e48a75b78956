// `memo` without preact/compat: a component that re-renders only when a
// prop changes identity. Transcript items are replaced, never mutated, so a
// streamed chunk re-renders the one message it extends.

import { Component, type FunctionComponent, type VNode, h } from "preact";

export function memo<P extends object>(render: FunctionComponent<P>): FunctionComponent<P> {
  class Memo extends Component<P> {
    shouldComponentUpdate(next: P): boolean {
      const prev = this.props as Record<string, unknown>;
      const now = next as Record<string, unknown>;
      const keys = new Set([...Object.keys(prev), ...Object.keys(now)]);
      for (const key of keys) if (key !== "children" && !Object.is(prev[key], now[key])) return true;
      return false;
    }

    render(props: P): VNode<unknown> {
      return h(render, props) as VNode<unknown>;
    }
  }
  return Memo as unknown as FunctionComponent<P>;
}
