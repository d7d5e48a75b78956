// The `/ws` socket (docs/api.md, "WebSocket /ws"): one connection carrying
// the `agent` channel (ACP JSON-RPC, both directions) and the `fs` channel
// (requests answered in order, plus unsolicited watch events). When the
// socket drops it reconnects with backoff; whoever owns it re-initialises
// ACP and reopens its session in `onOpen`.

import type { FsError, FsEvent, FsReply, FsRequest, JsonRpcMessage, RpcId, RpcRequest, RpcResponse } from "./protocol";

export type SocketState = "connecting" | "open" | "reconnecting" | "closed";

export class RpcFailure extends Error {
  constructor(readonly code: number, message: string, readonly data?: unknown) {
    super(message);
  }
}

export class FsFailure extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

/** A request that could not complete because the socket closed. */
export class ConnectionLost extends Error {
  constructor() {
    super("The connection to the server was lost.");
  }
}

export interface SocketHandlers {
  /** The socket is open (first time or after a reconnect). */
  onOpen(reconnected: boolean): void;
  onState(state: SocketState, detail: string | null): void;
  /** A request from the agent (e.g. `session/request_permission`). */
  onAgentRequest(request: RpcRequest): void;
  /** A notification from the agent (e.g. `session/update`). */
  onAgentNotification(method: string, params: unknown): void;
  onFsEvent(event: FsEvent | FsError): void;
}

interface Pending<T> {
  resolve(value: T): void;
  reject(error: Error): void;
}

/** Backoff between reconnects: 0.5 s doubling to 10 s. */
const RECONNECT_MS = [500, 1000, 2000, 4000, 8000, 10000];

export class Socket {
  private ws: WebSocket | null = null;
  private nextId = 1;
  private readonly rpc = new Map<RpcId, Pending<unknown>>();
  private fsQueue: Pending<FsReply>[] = [];
  private attempts = 0;
  private opened = false;
  private stopped = false;
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(private readonly url: () => string, private readonly handlers: SocketHandlers) {}

  get isOpen(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  connect(): void {
    this.stopped = false;
    this.open();
  }

  /** Closes for good (sign-out): no reconnect. */
  close(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.ws?.close(1000, "signed out");
    this.ws = null;
    this.failPending();
    this.handlers.onState("closed", null);
  }

  /** Drops the connection now and reconnects (the "Reconnect" button). */
  reconnectNow(): void {
    this.attempts = 0;
    if (this.timer) clearTimeout(this.timer);
    this.ws?.close(4000, "reconnect");
  }

  request<T>(method: string, params: unknown): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      if (!this.isOpen) return reject(new ConnectionLost());
      this.rpc.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.send("agent", { jsonrpc: "2.0", id, method, params });
    });
  }

  notify(method: string, params: unknown): void {
    if (this.isOpen) this.send("agent", { jsonrpc: "2.0", method, params });
  }

  respond(id: RpcId, result: unknown): void {
    if (this.isOpen) this.send("agent", { jsonrpc: "2.0", id, result });
  }

  respondError(id: RpcId, code: number, message: string): void {
    if (this.isOpen) this.send("agent", { jsonrpc: "2.0", id, error: { code, message } });
  }

  /** An fs request; replies come in request order (docs/api.md). */
  fs<T extends FsReply>(request: FsRequest): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (!this.isOpen) return reject(new ConnectionLost());
      this.fsQueue.push({ resolve: resolve as (v: FsReply) => void, reject });
      this.send("fs", { ...request, id: this.nextId++ });
    });
  }

  private send(channel: "agent" | "fs", data: unknown): void {
    this.ws?.send(JSON.stringify({ channel, data }));
  }

  private open(): void {
    const reconnecting = this.opened;
    this.handlers.onState(reconnecting ? "reconnecting" : "connecting", null);
    const ws = new WebSocket(this.url());
    this.ws = ws;
    ws.onopen = () => {
      this.attempts = 0;
      this.opened = true;
      this.handlers.onState("open", null);
      this.handlers.onOpen(reconnecting);
    };
    ws.onmessage = (event) => this.receive(event.data);
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.failPending();
      if (this.stopped) return;
      const why = event.code === 1006 ? null : `closed (${event.code}${event.reason ? `: ${event.reason}` : ""})`;
      this.handlers.onState("reconnecting", why);
      const delay = RECONNECT_MS[Math.min(this.attempts, RECONNECT_MS.length - 1)];
      this.attempts += 1;
      this.timer = setTimeout(() => this.open(), delay);
    };
  }

  private failPending(): void {
    const lost = new ConnectionLost();
    for (const pending of this.rpc.values()) pending.reject(lost);
    this.rpc.clear();
    for (const pending of this.fsQueue) pending.reject(lost);
    this.fsQueue = [];
  }

  private receive(text: unknown): void {
    if (typeof text !== "string") return;
    let frame: { channel?: string; data?: unknown };
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (frame.channel === "agent") {
      const data = typeof frame.data === "string" ? safeParse(frame.data) : frame.data;
      if (data && typeof data === "object") this.agent(data as JsonRpcMessage);
    } else if (frame.channel === "fs" && frame.data && typeof frame.data === "object") {
      this.fsFrame(frame.data as FsReply | FsEvent | FsError);
    }
  }

  private agent(message: JsonRpcMessage): void {
    if ("method" in message && "id" in message && message.id !== undefined) {
      this.handlers.onAgentRequest(message as RpcRequest);
    } else if ("method" in message) {
      this.handlers.onAgentNotification(message.method, message.params);
    } else {
      const response = message as RpcResponse;
      const pending = response.id === null ? undefined : this.rpc.get(response.id);
      if (!pending || response.id === null) return;
      this.rpc.delete(response.id);
      if (response.error) {
        pending.reject(new RpcFailure(response.error.code, response.error.message, response.error.data));
      } else {
        pending.resolve(response.result);
      }
    }
  }

  private fsFrame(data: FsReply | FsEvent | FsError): void {
    const unsolicited = data.type === "fs_event" || (data.type === "error" && data.id === undefined);
    if (unsolicited) {
      this.handlers.onFsEvent(data as FsEvent | FsError);
      return;
    }
    const pending = this.fsQueue.shift();
    if (!pending) return;
    if (data.type === "error") pending.reject(new FsFailure(data.code, data.message));
    else pending.resolve(data as FsReply);
  }
}

function safeParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
