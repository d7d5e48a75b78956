// The REST half of the protocol (docs/api.md, "REST"): GET requests with the
// bearer token, answers as typed JSON, every failure as an `ApiFailure`
// whose `message` is a sentence a person can act on.

import type { ApiErrorBody, ErrorCode } from "./protocol";

export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode | "network" | "bad_response",
    message: string,
  ) {
    super(message);
  }

  get isAuth(): boolean {
    return this.code === "unauthorized";
  }
}

/** What a failed request means, in words. The server's own message is kept. */
export function explain(status: number, body: unknown): ApiFailure {
  const error = (body as ApiErrorBody | null)?.error;
  const code = error?.code;
  const detail = error?.message ?? "";
  switch (code) {
    case "unauthorized":
      return new ApiFailure(status, code, "The server did not accept this token. Check it and sign in again.");
    case "origin_not_allowed":
      return new ApiFailure(status, code, `The server refuses requests from this page's origin (${location.origin}); add it to server.allowed_origins.`);
    case "backend_unavailable":
    case "backend_timeout":
      return new ApiFailure(status, code, `A service of the server is not answering: ${detail}`);
    case "shutting_down":
      return new ApiFailure(status, code, "The server is shutting down.");
    case undefined:
      return new ApiFailure(status, "bad_response", `The server answered ${status} without an explanation.`);
    default:
      return new ApiFailure(status, code, detail || `The server answered ${status} (${code}).`);
  }
}

export class Api {
  constructor(private token: string | null) {}

  setToken(token: string | null): void {
    this.token = token;
  }

  async get<T>(path: string): Promise<T> {
    const headers: Record<string, string> = { Accept: "application/json" };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    let response: Response;
    try {
      response = await fetch(path, { headers, cache: "no-store" });
    } catch {
      throw new ApiFailure(0, "network", "The server cannot be reached. Is `openheim serve` running?");
    }
    let body: unknown = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    if (!response.ok) throw explain(response.status, body);
    if (body === null) throw new ApiFailure(response.status, "bad_response", "The server sent an answer that is not JSON.");
    return body as T;
  }
}
