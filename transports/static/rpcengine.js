/*
 * rpcengine browser client: one file, no dependencies.
 *
 * Speaks the rpcengine wire protocol over a WebSocket: one JSON message list
 * per text frame ([0, lastId] heartbeat, [1, id, method, data] notification,
 * [2, id, method, data] request, [3, id, requestId, data] response,
 * [4, id, requestId, data] error, [-1] disconnect), with the optional
 * handshake object first so that heartbeats flow and a dropped connection
 * resumes without losing or repeating a message. Where a WebSocket cannot
 * be opened (no WebSocket, or a proxy that strips the upgrade) it falls back
 * to an HTTP long-poll session on the same port (option transport: "auto",
 * the default; "websocket" or "poll" to choose); client.transport says which.
 *
 *   const client = new rpcengine.Client("ws://127.0.0.1:8080/rpc");
 *   await client.ready;
 *   const sum = await client.request("add", [1, 2], {timeout: 5});
 *   client.notify("log", "hello");
 *   client.handle("ping", (data) => "pong");          // server-initiated calls
 *   client.on("notification", (method, data) => {});  // every notification
 *   client.close();
 */
(function (root) {
  "use strict";

  const PROTOCOL_VERSION = 1;
  const MAX_ID = Number.MAX_SAFE_INTEGER;

  /** Raised (as a rejected Promise) when the peer answers a request with an Error. */
  class RequestError extends Error {
    constructor(data) {
      super(data && typeof data.message === "string" ? data.message : JSON.stringify(data));
      this.name = "RequestError";
      this.data = data;
    }
  }

  /** A request got no answer within its timeout. */
  class RequestTimeout extends Error {
    constructor(message) {
      super(message);
      this.name = "RequestTimeout";
    }
  }

  /** The connection ended (and could not be resumed) before the answer came. */
  class ConnectionLost extends Error {
    constructor(message) {
      super(message);
      this.name = "ConnectionLost";
    }
  }

  const DEFAULTS = {
    handshake: true, // send the handshake object: heartbeats and resume
    reconnect: true, // redial and resume after a lost connection
    initialDelay: 0.1, // seconds before the first redial (doubling, with jitter)
    maxDelay: 5, // longest pause between redials
    giveUpAfter: 30, // stop redialling after this many seconds
    heartbeatInterval: 5, // seconds between heartbeats we send
    heartbeatTimeout: 15, // peer silent this long: connection declared dead
    timeout: null, // default request timeout in seconds (null: none)
    protocols: ["rpcengine.v1"], // WebSocket subprotocols to offer (the server selects rpcengine.v1)
    transport: "auto", // "auto": WebSocket, long-poll if it cannot open; "websocket"; "poll"
  };

  const POLL_MARGIN = 5; // seconds a held poll may take beyond its hold before the server counts as silent
  const sleep = (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));

  /** The HTTP twin of a WebSocket URL: ws://host/p -> http://host/p/rpc (an http(s):// URL is kept). */
  function httpTwin(url) {
    if (/^https?:/i.test(url)) return url;
    const twin = new URL(url.replace(/^ws/i, "http"));
    twin.pathname = twin.pathname.replace(/\/+$/, "") + "/rpc";
    return twin.toString();
  }

  /**
   * A WebSocket look-alike over HTTP long-poll: the first send (the handshake
   * object) starts the session; a poller keeps one POST held at the server
   * (its body [0, last received] acknowledges what came), and a sender posts
   * what the client sends, one batch at a time, again until taken. See the
   * "HTTP" section of the protocol page.
   */
  class PollSocket {
    constructor(url, lastReceived, retryFor) {
      this.url = url;
      this._lastReceived = lastReceived;
      this._retryFor = retryFor;
      this.onopen = this.onmessage = this.onclose = this.onerror = null;
      this._path = null;
      this._secret = null;
      this._hold = 25;
      this._queue = [];
      this._sending = false;
      this._closed = false;
      this._aborts = new Set();
      setTimeout(() => {
        if (!this._closed && this.onopen) this.onopen();
      }, 0);
    }

    send(text) {
      if (this._closed) return;
      if (this._path === null) {
        this._bootstrap(text);
      } else if (!text.startsWith("[0,")) {
        // (a heartbeat is not sent: every poll carries the acknowledgement)
        this._queue.push(text);
        this._flush();
      }
    }

    close(code, reason) {
      if (this._closed) return;
      this._closed = true;
      for (const controller of this._aborts) controller.abort();
      if (this._path !== null && code === 1000) {
        // Tell the server at once that the session is over (else it waits resume_grace).
        this._post(this._path, "[-1]\n", 2, true).catch(() => {});
      }
      if (this.onclose) this.onclose({ code: code || 1000, reason: reason || "" });
    }

    async _post(path, body, seconds, final) {
      const controller = new AbortController();
      if (!final) this._aborts.add(controller);
      const timer = setTimeout(() => controller.abort(), seconds * 1000);
      try {
        const headers = { "Content-Type": "text/plain" };
        if (this._secret !== null) headers["X-Rpcengine-Secret"] = this._secret;
        const target = new URL(path, this.url).toString();
        const answer = await fetch(target, { method: "POST", body, headers, signal: controller.signal, cache: "no-store", keepalive: !!final });
        return { status: answer.status, text: await answer.text() };
      } finally {
        clearTimeout(timer);
        this._aborts.delete(controller);
      }
    }

    _fail(reason) {
      if (this._closed) return;
      if (this.onerror) this.onerror(new Error(reason));
      this.close(4001, reason);
    }

    _deliver(text) {
      if (!this._closed && this.onmessage) this.onmessage({ data: text });
    }

    async _bootstrap(hello) {
      let answer;
      try {
        answer = await this._post(new URL(this.url).pathname.replace(/\/+$/, "") + "/session", hello, 10);
      } catch (err) {
        this._fail(`long-poll bootstrap failed: ${err}`);
        return;
      }
      let value = null;
      try {
        value = JSON.parse(answer.text);
      } catch (err) {
        /* not JSON: refused below */
      }
      if (answer.status === 200 && value && value.poll && typeof value.poll.url === "string") {
        this._path = value.poll.url;
        this._secret = typeof value.secret === "string" ? value.secret : null;
        this._hold = value.poll.hold;
      }
      this._deliver(answer.text); // the handshake answer (or the refusal) goes to the client
      if (this._path !== null) this._pollLoop();
      else this._fail(`long-poll bootstrap refused (HTTP ${answer.status})`);
    }

    async _again(path, body, seconds) {
      // POST until answered 200 (retrying a lost answer: the server drops what it had already); null once over.
      let delay = 0.05;
      const started = Date.now();
      while (!this._closed) {
        let answer;
        try {
          answer = await this._post(path, body, seconds);
        } catch (err) {
          if (this._closed) return null;
          if (Date.now() - started > this._retryFor * 1000) {
            this._fail(`the server was unreachable: ${err}`);
            return null;
          }
          await sleep(delay * (0.5 + Math.random() / 2));
          delay = Math.min(delay * 2, 2);
          continue;
        }
        if (answer.status === 200) return answer.text;
        this._fail(`the server answered HTTP ${answer.status}`);
        return null;
      }
      return null;
    }

    async _pollLoop() {
      while (!this._closed) {
        const text = await this._again(this._path, JSON.stringify([0, this._lastReceived()]), this._hold + POLL_MARGIN + 5);
        if (text === null) return;
        let messages;
        try {
          messages = JSON.parse(text);
        } catch (err) {
          this._fail("invalid JSON from the server");
          return;
        }
        for (const message of Array.isArray(messages) ? messages : []) this._deliver(JSON.stringify(message));
      }
    }

    async _flush() {
      if (this._sending) return;
      this._sending = true;
      try {
        while (this._queue.length && !this._closed) {
          const batch = this._queue;
          this._queue = [];
          if ((await this._again(this._path, batch.join("\n") + "\n", this._hold + POLL_MARGIN)) === null) return;
        }
      } finally {
        this._sending = false;
      }
    }
  }

  class Client {
    /**
     * Connect to url (ws:// or wss://). `ready` resolves once the first
     * connection (and handshake) is up, and rejects if it cannot be made.
     */
    constructor(url, options) {
      this.url = url;
      this.options = Object.assign({}, DEFAULTS, options || {});
      this.sessionId = null;
      this._secret = null; // given with a new session; presented (with sessionId) to resume it
      this.closed = false;
      this._ws = null;
      this._open = false;
      this._everOpen = false;
      /** "websocket" or "poll": the transport in use (or being tried). */
      this.transport = this.options.transport === "poll" || /^https?:/i.test(url) ? "poll" : "websocket";
      this._lastId = 0;
      this._lastReceived = 0;
      this._unackedReceived = 0;
      this._pending = new Map(); // id -> {resolve, reject, timer}
      this._outbox = []; // [id, text] sent and not yet acknowledged (resume)
      this._handlers = new Map(); // method -> function(data, method)
      this._listeners = { open: [], close: [], notification: [], error: [] };
      this._lastSeen = Date.now();
      this._ticker = null;
      this._redialStarted = null;
      this._delay = this.options.initialDelay;
      this.ready = new Promise((resolve, reject) => {
        this._readyResolve = resolve;
        this._readyReject = reject;
      });
      this.ready.catch(() => {}); // callers that never await ready must not see an unhandled rejection
      this._dial();
    }

    /** Call method on the server; resolves with its result, rejects with RequestError, RequestTimeout or ConnectionLost. */
    request(method, data, opts) {
      const timeout = opts && opts.timeout != null ? opts.timeout : this.options.timeout;
      return new Promise((resolve, reject) => {
        if (this.closed) {
          reject(new ConnectionLost("the client is closed"));
          return;
        }
        const id = this._nextId();
        const entry = { resolve, reject, timer: null };
        if (timeout != null) {
          entry.timer = setTimeout(() => {
            this._pending.delete(id);
            reject(new RequestTimeout(`no answer to ${method} within ${timeout} s`));
          }, timeout * 1000);
        }
        this._pending.set(id, entry);
        try {
          this._send(id, [2, id, method, data === undefined ? null : data]);
        } catch (err) {
          this._pending.delete(id);
          if (entry.timer) clearTimeout(entry.timer);
          reject(err);
        }
      });
    }

    /** Send a notification: call method on the server without waiting for an answer. */
    notify(method, data) {
      if (this.closed) throw new ConnectionLost("the client is closed");
      const id = this._nextId();
      this._send(id, [1, id, method, data === undefined ? null : data]);
    }

    /** Serve method for the server: fn(data, method) returns the result or a Promise of it. */
    handle(method, fn) {
      this._handlers.set(method, fn);
      return this;
    }

    /** Listen to "open", "close", "notification" (method, data) or "error" events. */
    on(event, fn) {
      if (!this._listeners[event]) throw new Error(`unknown event ${event}`);
      this._listeners[event].push(fn);
      return this;
    }

    /** Close for good: pending requests reject with ConnectionLost. */
    close() {
      if (this.closed) return;
      this.closed = true;
      this._stopTicker();
      if (this._ws) {
        try {
          this._ws.close(1000, "client closed");
        } catch (err) {
          /* already closing */
        }
      }
      this._failPending("the client is closed");
      this._readyReject(new ConnectionLost("the client is closed"));
      this._emit("close", "closed by the client");
    }

    // -- internals -------------------------------------------------------

    _nextId() {
      this._lastId = this._lastId >= MAX_ID ? 1 : this._lastId + 1;
      return this._lastId;
    }

    _resumable() {
      return this.options.handshake && this.options.reconnect;
    }

    _send(id, message) {
      const text = JSON.stringify(message);
      if (id !== null && this._resumable()) this._outbox.push([id, text]);
      if (this._open) {
        this._ws.send(text);
      } else if (!this._resumable()) {
        throw new ConnectionLost("not connected");
      }
    }

    _emit(event, ...args) {
      for (const fn of this._listeners[event]) {
        try {
          fn(...args);
        } catch (err) {
          console.error("rpcengine listener failed", err);
        }
      }
    }

    _fallBack() {
      // The WebSocket never opened: try long-poll instead (transport "auto" only, before any connection).
      if (this.options.transport !== "auto" || this._everOpen || this.transport === "poll") return false;
      this.transport = "poll";
      this._dial();
      return true;
    }

    _dial() {
      let ws;
      try {
        if (this.transport === "poll") {
          ws = new PollSocket(httpTwin(this.url), () => this._lastReceived, this.options.giveUpAfter);
        } else {
          ws = new WebSocket(this.url, this.options.protocols);
        }
      } catch (err) {
        if (!this._fallBack()) this._connectionEnded(String(err));
        return;
      }
      this._ws = ws;
      let greeted = !this.options.handshake;
      ws.onopen = () => {
        this._lastSeen = Date.now();
        if (this.options.handshake) {
          const hello = { rpcengine: PROTOCOL_VERSION, session: this.sessionId, ack: this._lastReceived };
          if (this.sessionId !== null && this._secret !== null) hello.secret = this._secret;
          ws.send(JSON.stringify(hello));
        } else {
          this._connected(null);
        }
      };
      ws.onmessage = (event) => {
        this._lastSeen = Date.now();
        let value;
        try {
          value = JSON.parse(event.data);
        } catch (err) {
          this._emit("error", new Error("invalid JSON from the server"));
          ws.close(1007, "invalid JSON");
          return;
        }
        if (!greeted) {
          greeted = true;
          this._greeted(value);
          return;
        }
        this._received(value);
      };
      ws.onerror = () => this._emit("error", new Error("WebSocket error"));
      ws.onclose = (event) => {
        if (this._ws !== ws) return;
        if (!this._open && this._fallBack()) return;
        this._connectionEnded(`closed (${event.code}) ${event.reason || ""}`.trim());
      };
    }

    _greeted(hello) {
      if (!hello || typeof hello !== "object" || Array.isArray(hello) || hello.error || typeof hello.session !== "string") {
        const reason = hello && hello.error ? `server refused: ${hello.error}` : "invalid handshake answer";
        this._emit("error", new Error(reason));
        this.options.reconnect = false;
        this._ws.close(1002, "handshake failed");
        return;
      }
      if (this.sessionId !== null && !hello.resumed) {
        // The server forgot our session (it restarted): what was pending is lost.
        this._outbox = [];
        this._lastReceived = 0;
        this._failPending("the server restarted; its session is gone");
      }
      this.sessionId = hello.session;
      if (typeof hello.secret === "string") this._secret = hello.secret;
      if (hello.poll && this.options.heartbeatTimeout) {
        // A held poll is quiet for up to its hold: that is not silence.
        this.options.heartbeatTimeout = Math.max(this.options.heartbeatTimeout, hello.poll.hold + POLL_MARGIN);
      }
      this._connected(typeof hello.ack === "number" ? hello.ack : 0);
    }

    _connected(peerAck) {
      this._open = true;
      this._everOpen = true;
      this._redialStarted = null;
      this._delay = this.options.initialDelay;
      if (peerAck !== null) {
        this._acknowledged(peerAck);
        for (const [, text] of this._outbox) this._ws.send(text);
      }
      this._startTicker();
      this._readyResolve(this);
      this._emit("open", this.sessionId);
    }

    _acknowledged(ack) {
      while (this._outbox.length && this._outbox[0][0] <= ack) this._outbox.shift();
    }

    _received(message) {
      if (!Array.isArray(message) || message.length === 0) {
        this._emit("error", new Error("message is not a list"));
        return;
      }
      const code = message[0];
      if (code === 0) {
        this._acknowledged(message[1]);
        return;
      }
      if (code === -1) {
        this.options.reconnect = false; // the server is going away on purpose
        return;
      }
      const id = message[1];
      if (this.options.handshake && id <= this._lastReceived && this._resumable()) return; // duplicate after resume
      if (id > this._lastReceived) this._lastReceived = id;
      if (this.options.handshake && ++this._unackedReceived >= 256) this._heartbeat();
      if (code === 3 || code === 4) {
        const entry = this._pending.get(message[2]);
        if (!entry) return; // late answer to a request that timed out
        this._pending.delete(message[2]);
        if (entry.timer) clearTimeout(entry.timer);
        if (code === 3) entry.resolve(message[3]);
        else entry.reject(new RequestError(message[3]));
      } else if (code === 1) {
        this._notified(message[2], message[3]);
      } else if (code === 2) {
        this._answer(id, message[2], message[3]);
      }
    }

    _notified(method, data) {
      const fn = this._handlers.get(method);
      if (fn) {
        Promise.resolve()
          .then(() => fn(data, method))
          .catch((err) => console.error(`rpcengine: handler for ${method} failed`, err));
      }
      this._emit("notification", method, data);
    }

    _answer(requestId, method, data) {
      const fn = this._handlers.get(method);
      const reply = (code, payload) => {
        if (this.closed) return;
        const id = this._nextId();
        try {
          this._send(id, [code, id, requestId, payload === undefined ? null : payload]);
        } catch (err) {
          /* connection gone: nothing to answer on */
        }
      };
      if (!fn) {
        reply(4, { error: "method_not_found", message: `method not found: ${method}`, method });
        return;
      }
      Promise.resolve()
        .then(() => fn(data, method))
        .then(
          (result) => reply(3, result),
          (err) => reply(4, err instanceof RequestError ? err.data : { error: "internal_error", message: "internal error" })
        );
    }

    _heartbeat() {
      this._unackedReceived = 0;
      if (this._open) this._ws.send(JSON.stringify([0, this._lastReceived]));
    }

    _startTicker() {
      this._stopTicker();
      if (!this.options.handshake || !this.options.heartbeatInterval) return;
      const period = Math.min(this.options.heartbeatInterval, this.options.heartbeatTimeout || Infinity) * 250;
      let lastBeat = Date.now();
      this._ticker = setInterval(() => {
        const now = Date.now();
        if (this.options.heartbeatTimeout && now - this._lastSeen > this.options.heartbeatTimeout * 1000) {
          this._ws.close(4000, "server silent");
          this._connectionEnded("no frame from the server in time");
        } else if (now - lastBeat >= this.options.heartbeatInterval * 1000) {
          lastBeat = now;
          this._heartbeat();
        }
      }, period);
    }

    _stopTicker() {
      if (this._ticker !== null) clearInterval(this._ticker);
      this._ticker = null;
    }

    _connectionEnded(reason) {
      const wasOpen = this._open;
      this._open = false;
      this._ws = null;
      this._stopTicker();
      if (this.closed) return;
      if (this._resumable() && this.options.reconnect) {
        if (this._redialStarted === null) this._redialStarted = Date.now();
        if (Date.now() - this._redialStarted < this.options.giveUpAfter * 1000) {
          const pause = this._delay * (0.5 + Math.random() / 2);
          this._delay = Math.min(this._delay * 2, this.options.maxDelay);
          setTimeout(() => {
            if (!this.closed) this._dial();
          }, pause * 1000);
          if (wasOpen) this._emit("close", reason);
          return;
        }
      }
      this.closed = true;
      this._failPending(`connection lost: ${reason}`);
      this._readyReject(new ConnectionLost(reason));
      this._emit("close", reason);
    }

    _failPending(reason) {
      const pending = this._pending;
      this._pending = new Map();
      for (const entry of pending.values()) {
        if (entry.timer) clearTimeout(entry.timer);
        entry.reject(new ConnectionLost(reason));
      }
    }
  }

  root.rpcengine = { Client, RequestError, RequestTimeout, ConnectionLost, PROTOCOL_VERSION };
})(typeof window !== "undefined" ? window : globalThis);
