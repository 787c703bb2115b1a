// ptth.js: a browser tab claims a name on a ptth-relay and answers the
// requests sent to it, using the ReverseHttp long-poll protocol.
//
//   import { serve } from "/_ptth/ptth.js";
//   const tunnel = serve({ relay: "http://127.0.0.1:8080", name: "lamp" },
//                        async (request, info) => new Response("hi"));
//   const { publicUrl } = await tunnel.ready;
//
// The handler gets a fetch `Request` and `info`: `client` (the public
// client's "ip:port") and `headers` (every header as received, including
// those a `Request` may not carry, such as Cookie or Host).
//
// Each poll loop holds one connection to the relay and answers one request
// at a time; `polls: N` runs N loops. Browsers open at most six HTTP/1.1
// connections per host, and replies need one too, so keep N below six.

// The relay holds a poll 30 s; a fetch silent for twice that is presumed lost.
const FETCH_LIMIT_MS = 65_000;
const BACKOFF_FIRST_MS = 200;
const BACKOFF_CAP_MS = 30_000;
// The reply envelope's own framing; a handler's copies would contradict it.
const HOP_BY_HOP = new Set([
  "connection", "content-length", "keep-alive", "proxy-connection", "te",
  "trailer", "transfer-encoding", "upgrade",
]);
// `new Response(...)` leaves statusText empty unless told.
const REASONS = {
  200: "OK", 201: "Created", 202: "Accepted", 204: "No Content",
  206: "Partial Content", 301: "Moved Permanently", 302: "Found",
  303: "See Other", 304: "Not Modified", 307: "Temporary Redirect",
  308: "Permanent Redirect", 400: "Bad Request", 401: "Unauthorized",
  403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
  409: "Conflict", 410: "Gone", 413: "Content Too Large",
  415: "Unsupported Media Type", 429: "Too Many Requests",
  500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
  503: "Service Unavailable", 504: "Gateway Timeout",
};

// Retrying cannot cure these: a bad name or someone else's token.
class Fatal extends Error {}

class Retry extends Error {
  constructor(message, retryAfterMs) {
    super(message);
    this.retryAfterMs = retryAfterMs;
  }
}

export function serve(options, handler) {
  return new Tunnel(options, handler);
}

export class Tunnel extends EventTarget {
  #options;
  #handler;
  #abort = new AbortController();
  #state = "registering";
  #settle;

  constructor(options, handler) {
    super();
    if (!options?.relay || !options.name) throw new TypeError("serve needs options.relay and options.name");
    if (typeof handler !== "function") throw new TypeError("serve needs a handler function");
    this.#options = { access: "/reversehttp", polls: 1, ...options };
    this.#handler = handler;
    this.publicUrl = null;
    this.ready = new Promise((resolve, reject) => (this.#settle = { resolve, reject }));
    // A caller that only listens to "status" must not see an unhandled rejection.
    this.ready.catch(() => {});
    // Deferred so that listeners added right after `serve()` see the first events.
    queueMicrotask(() => {
      for (let i = 0; i < this.#options.polls; i++) this.#loop();
    });
  }

  get state() {
    return this.#state;
  }

  close() {
    this.#finish("closed", new DOMException("tunnel closed", "AbortError"));
  }

  #finish(state, error) {
    if (this.#abort.signal.aborted) return;
    this.#abort.abort(error);
    this.#settle.reject(error);
    this.#status(state, state === "failed" ? { error: error.message } : {});
  }

  #status(state, extra = {}) {
    this.#state = state;
    this.dispatchEvent(new CustomEvent("status", { detail: { state, ...extra } }));
  }

  async #loop() {
    const signal = this.#abort.signal;
    let url = null;
    let failures = 0;
    while (!signal.aborted) {
      try {
        if (!url) {
          this.#status("registering");
          url = await this.#register();
        }
        if (this.#state !== "polling") this.#status("polling");
        url = await this.#poll(url);
        failures = 0;
      } catch (error) {
        if (signal.aborted) return;
        if (error instanceof Fatal) return this.#finish("failed", error);
        // Without a token of our own, registering again would meet the one
        // the relay made up: 403. Polling the last Request URL re-creates
        // the name with that token instead.
        if (this.#options.token != null) url = null;
        const jitter = Math.random() * Math.min(BACKOFF_CAP_MS, BACKOFF_FIRST_MS * 2 ** failures++);
        const delay = Math.round(Math.max(jitter, error.retryAfterMs ?? 0));
        this.#status("backoff", { error: error.message ?? String(error), delay });
        await sleep(delay, signal);
      }
    }
  }

  #fetch(url, init) {
    const signal = AbortSignal.any([this.#abort.signal, AbortSignal.timeout(FETCH_LIMIT_MS)]);
    return fetch(url, { ...init, cache: "no-store", signal });
  }

  // Each loop registers on its own: concurrent polls of one Request URL
  // would share a reply key.
  async #register() {
    const { relay, access, name, token } = this.#options;
    const body = new URLSearchParams({ name });
    if (token != null) body.set("token", token);
    const response = await this.#fetch(relay.replace(/\/+$/, "") + access, { method: "POST", body });
    if (response.status !== 201 && response.status !== 204) throw await failure(response, "registration");
    const links = parseLinks(response.headers.get("Link"), response.url);
    if (!links.first || !links.related) {
      // Cross-origin, an unexposed Link header reads as absent.
      throw new Fatal("registration answer lacks Link rel=\"first\" and rel=\"related\"");
    }
    this.publicUrl = links.related;
    const location = response.headers.get("Location");
    this.#settle.resolve({
      publicUrl: links.related,
      requestUrl: links.first,
      privateUrl: location && new URL(location, response.url).href,
    });
    return links.first;
  }

  // Returns the URL to poll next.
  async #poll(url) {
    const response = await this.#fetch(url, { headers: { Accept: "message/http" } });
    const next = parseLinks(response.headers.get("Link"), response.url).next ?? url;
    if (response.status === 204) return next;
    if (response.status !== 200) throw await failure(response, "poll");
    const message = new Uint8Array(await response.arrayBuffer());
    await this.#answer(url, message, response.headers.get("Requesting-Client"));
    return next;
  }

  async #answer(url, message, client) {
    const started = performance.now();
    let parsed;
    let request;
    try {
      parsed = parseRequest(message);
      request = toRequest(parsed, this.publicUrl, this.#abort.signal);
    } catch (error) {
      return this.#reply(url, plain(400, `cannot serve this request from a browser: ${error.message}`), {
        method: parsed?.method ?? "?", url: parsed?.target ?? "?", started, error: error.message,
      });
    }
    const event = { method: request.method, url: request.url, started };
    let response;
    try {
      response = await this.#handler(request, { client, headers: parsed.headers });
      if (!(response instanceof Response)) throw new TypeError("the handler did not return a Response");
    } catch (error) {
      event.error = error?.message ?? String(error);
      response = plain(500, "Internal Server Error");
    }
    return this.#reply(url, response, event);
  }

  async #reply(url, response, event) {
    let body;
    try {
      body = await encodeResponse(response, { method: event.method });
    } catch (error) {
      // The handler's body stream failed after it returned.
      event.error = error?.message ?? String(error);
      response = plain(500, "Internal Server Error");
      body = await encodeResponse(response);
    }
    const answer = await this.#fetch(url, {
      method: "POST", headers: { "Content-Type": "message/http" }, body,
    });
    // A 404 means the relay gave up on this request (or it was answered):
    // the public client already has the relay's own status, so carry on.
    if (answer.status >= 500) throw await failure(answer, "reply");
    const { started, ...detail } = event;
    detail.status = response.status;
    detail.ms = Math.round(performance.now() - started);
    this.dispatchEvent(new CustomEvent("request", { detail }));
  }
}

async function failure(response, what) {
  const text = (await response.text().catch(() => "")).trim().slice(0, 200);
  const message = `${what}: ${response.status}${text ? ` ${text}` : ""}`;
  if ([400, 401, 403].includes(response.status)) return new Fatal(message);
  const seconds = Number(response.headers.get("Retry-After"));
  return new Retry(message, Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : undefined);
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
  });
}

function plain(status, text) {
  return new Response(text, { status, headers: { "Content-Type": "text/plain; charset=utf-8" } });
}

// `rel` -> absolute URL. fetch joins repeated Link lines with ", ", and a
// URL or a quoted parameter may itself hold a comma, so split by hand.
function parseLinks(value, base) {
  const links = {};
  let i = 0;
  while (value) {
    const open = value.indexOf("<", i);
    const close = value.indexOf(">", open);
    if (open < 0 || close < 0) break;
    let params = "";
    let quoted = false;
    for (i = close + 1; i < value.length; i++) {
      const c = value[i];
      if (c === "," && !quoted) break;
      if (c === "\"") quoted = !quoted;
      else if (c === "\\" && quoted) i++;
      params += c;
    }
    const rel = /;\s*rel\s*=\s*(?:"([^"]*)"|([^\s;]+))/i.exec(params);
    for (const name of (rel?.[1] ?? rel?.[2] ?? "").toLowerCase().split(/\s+/)) {
      if (name && !(name in links)) links[name] = new URL(value.slice(open + 1, close), base).href;
    }
  }
  return links;
}

// Parses one `message/http` request. Header bytes map to characters one to
// one (latin-1), as the Fetch API's byte strings expect. Accepts bare LF
// line ends; the body is Content-Length bytes if given, else the rest.
export function parseRequest(bytes) {
  const data = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const [headEnd, bodyStart] = splitHead(data);
  const lines = latin1(data.subarray(0, headEnd)).split(/\r?\n/);
  const [method, target, version = "HTTP/1.0", ...rest] = lines.shift().split(" ");
  if (!method || !target || rest.length) throw new SyntaxError("message/http: malformed request line");
  const headers = [];
  for (const line of lines) {
    if (/^[ \t]/.test(line) && headers.length) {
      headers[headers.length - 1][1] += ` ${line.trim()}`; // obsolete line folding
      continue;
    }
    const colon = line.indexOf(":");
    if (colon <= 0) throw new SyntaxError(`message/http: malformed header line ${JSON.stringify(line)}`);
    headers.push([line.slice(0, colon).trim(), line.slice(colon + 1).trim()]);
  }
  const length = headers.find(([name]) => name.toLowerCase() === "content-length")?.[1];
  const end = /^\d+$/.test(length ?? "") ? bodyStart + Number(length) : data.length;
  return { method, target, version, headers, body: data.subarray(bodyStart, end) };
}

// [end of the head without its last line end, start of the body]
function splitHead(data) {
  for (let i = 0; i < data.length; i++) {
    if (data[i] !== 10) continue;
    const next = data[i + 1] === 13 ? i + 2 : i + 1;
    if (data[next] === 10) return [data[i - 1] === 13 ? i - 1 : i, next + 1];
  }
  throw new SyntaxError("message/http: no blank line after the head");
}

function toRequest({ method, target, headers, body }, publicUrl, signal) {
  const fields = new Headers();
  for (const [name, value] of headers) {
    try {
      fields.append(name, value);
    } catch {
      // A name or value the Fetch API cannot hold; the handler still has it in info.headers.
    }
  }
  // Concatenated, not resolved: a target such as "//x/y" is a path here,
  // not another host. An absolute-form target keeps only its path.
  const path = target.startsWith("/") ? target : ((u) => u.pathname + u.search)(new URL(target));
  // Forbidden names (Host, Cookie, ...) are dropped silently by `Request`.
  const bodyless = /^(GET|HEAD)$/i.test(method);
  return new Request(new URL(publicUrl).origin + path, {
    method, headers: fields, body: bodyless ? undefined : body, signal,
  });
}

// Encodes a fetch `Response` as a `message/http` reply. `method` is the
// request's: a HEAD answer, like a 204 or 304, carries no body.
export async function encodeResponse(response, { method = "GET" } = {}) {
  const bodyless = method === "HEAD" || response.status === 204 || response.status === 304;
  let body = new Uint8Array(0);
  if (bodyless) await response.body?.cancel();
  else body = new Uint8Array(await response.arrayBuffer());
  let head = `HTTP/1.1 ${response.status} ${response.statusText || REASONS[response.status] || ""}\r\n`;
  for (const [name, value] of response.headers) {
    if (!HOP_BY_HOP.has(name)) head += `${name}: ${value}\r\n`;
  }
  if (!bodyless) head += `Content-Length: ${body.length}\r\n`;
  head += "\r\n";
  const out = new Uint8Array(head.length + body.length);
  for (let i = 0; i < head.length; i++) out[i] = head.charCodeAt(i);
  out.set(body, head.length);
  return out;
}

function latin1(bytes) {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return text;
}
