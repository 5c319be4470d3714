// The case-conference engine of the browser app, the twin of client/conference.py: one device of
// one professional over one websocket (docs/protocol.md §11). It knows no DOM: the page module
// (app.js) listens to its events and draws; a test can drive it on its own.
//
// What it does, per thread the user is admitted to:
// - joins the thread's chain from its commits (GET /api/threads/{id}/commits; restoring the
//   sealed snapshot of this device's epoch secrets and counter from IndexedDB when there is one),
//   then opens the backlog the server sends after `hello` (resume from the last seq seen, so a
//   reconnect misses nothing and repeats nothing);
// - applies every commit after checking it (group.js), following the transparency log
//   (follower.js) when a commit names a consent or device this browser has not seen yet;
// - keeps the roster right on its own ("auto-commits"): opens epoch 0 once the client's consent
//   is recorded, adds admitted devices the log proves (an organisation new to the thread, and a
//   member's new device none of their devices here linked, wait for a member's approval:
//   `approveOrganisation`, `approveDevice`), removes devices a consent change or a
//   revocation cut off. Several members may try at once: the server sequences one commit per
//   epoch, the others get koppi.stale_commit, apply the winner and look again;
// - sends: the message is shown at once as pending, sealed (in the ProtocolWorker, off the UI
//   thread) with the counter persisted first, resent under the same id until acknowledged,
//   re-encrypted if a commit overtook it (koppi.stale_epoch), and marked delivered on `ack`.
//
// Events (EventTarget, `event.detail`): "connection" {state: connecting | open | reconnecting |
// offline | closed, reason}, "thread" {thread} (anything about a thread changed: messages,
// roster, removal, refusal), "error" {thread, code, message}.

import { b64u, equalBytes, hex, unb64u, unhex } from "./protocol/encoding.js";
import { decodeGenesis, encodeGenesis } from "./protocol/commit.js";
import { ThreadState, joinThread, restoreThread } from "./protocol/group.js";
import { defaultLabel, open as openMessage, parse, StorageLabel } from "./protocol/message.js";
import { resolveMembers } from "./protocol/follower.js";

export const PAGE = 500;
// A commit naming a consent or device the log view has not caught up with yet: follow again.
const FOLLOW_AGAIN = new Set(["koppi.unknown_consent", "koppi.unknown_device", "koppi.tree_head_ahead"]);
// A send the server refused until the thread moves on: apply the commits (or commit the due
// removal), then encrypt again under the same id.
const RESEND = new Set(["koppi.stale_epoch", "koppi.unknown_epoch", "koppi.removal_due"]);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A 16-byte id as the server writes it. */
export function uuidOf(bytes) {
  const h = hex(bytes);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function uuidBytes(text) {
  return Uint8Array.from(text.replace(/-/g, "").match(/../g), (x) => parseInt(x, 16));
}

/** One thread as this device sees it. `messages`: message id (base64url) -> entry, where an
 * entry is {id, seq, status: pending | delivered | failed | withheld | refused, text, sender:
 * {device, user, org} (hex user/org ids as UUID strings), sentAtMs, label: {orgs, basis}, mine,
 * code}. */
export class ThreadView {
  constructor(id) {
    this.id = id;
    this.info = null; // GET /api/threads/{id}
    this.state = null; // group.js ThreadState, once this device is in the roster
    this.lastSeq = 0; // the highest seq delivered (resume point)
    this.buffer = []; // envelopes delivered before this device could read them
    this.messages = new Map();
    this.removed = null; // {reason, consent}: the consent no longer admits this user
    this.refusal = null; // the admission code at hello, if not admitted
    this.waiting = new Map(); // hex device id -> {kind, device, reason}: needs a member's approval
    this.refused = new Map(); // hex device id -> reason: listed by the server, not proven by the log
    this.chain = Promise.resolve(); // one step at a time per thread
    this.prepared = false;
  }

  get ordered() {
    const list = [...this.messages.values()];
    const key = (m) => (m.seq ?? Number.MAX_SAFE_INTEGER);
    return list.sort((a, b) => key(a) - key(b) || (a.queued ?? 0) - (b.queued ?? 0));
  }

  /** Which organisations a label may name now (hex ids): the current epoch's consent lets them
   * store and covers them. */
  get mayStore() {
    const cur = this.state?.chain.current;
    const epoch = cur ? this.state.epochs.get(cur.number) : null;
    if (!epoch) return new Set();
    return new Set([...epoch.mayStore].filter((o) => epoch.coverage.has(o)));
  }

  get roster() {
    const cur = this.state?.chain.current;
    return cur ? [...cur.roster.keys()] : [];
  }
}

export class Conference extends EventTarget {
  /**
   * `api(method, path, body)`: the server's JSON (throws its error with `code`); `me`: this
   * device's keys as ThreadState takes them; `follower`: a LogFollower pinned to the page's keys;
   * `store`: the open KeyStore (snapshots); `worker`: a ProtocolWorker or null; `wsUrl`.
   */
  constructor({ api, me, user, follower, store = null, worker = null, wsUrl, WebSocketImpl = globalThis.WebSocket,
    pollMs = 3000, backoffMs = [250, 500, 1000, 2000, 4000], jitterMs = 400 }) {
    super();
    Object.assign(this, { api, me, user, follower, store, worker, wsUrl, WebSocketImpl, pollMs, backoffMs, jitterMs });
    this.threads = new Map();
    this.connection = null;
    this.waitingFrames = new Map(); // frame id -> {resolve, reject}
    this.approvedOrgs = new Map(); // thread id -> Set(hex org id) a person approved here
    this.approvedDevices = new Map(); // thread id -> Set(hex device id) a person approved here
    this.attempt = 0;
    this.stopped = false;
    this.queued = 0;
  }

  get trust() {
    return this.follower.trust;
  }

  get deviceHex() {
    return hex(this.me.deviceId);
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  setConnection(state, reason = null) {
    if (state === this.connection && reason === null) return;
    this.connection = state;
    this.emit("connection", { state, reason });
  }

  thread(id) {
    if (!this.threads.has(id)) this.threads.set(id, new ThreadView(id));
    return this.threads.get(id);
  }

  changed(t) {
    this.emit("thread", { thread: t.id });
  }

  /** Run `step` after everything already queued for the thread; errors are reported, not thrown. */
  step(t, step) {
    t.chain = t.chain.then(step).catch((e) => {
      this.emit("error", { thread: t.id, code: e?.code ?? "koppi.error", message: String(e?.message ?? e) });
    });
    return t.chain;
  }

  // --- the connection --------------------------------------------------------------------------

  start() {
    this.stopped = false;
    globalThis.addEventListener?.("online", () => { if (this.connection === "offline") this.connect(); });
    globalThis.addEventListener?.("offline", () => { // no trusting a socket the system calls dead
      this.dropSocket(4001, "offline");
      this.setConnection("offline");
    });
    this.poller = setInterval(() => this.poll(), this.pollMs);
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearInterval(this.poller);
    this.dropSocket(1000, "closed");
    this.setConnection("closed");
  }

  /** Forget the socket (its late close is ignored); what waited for an answer is sent again
   * after the next ready. */
  dropSocket(code, reason) {
    const ws = this.ws;
    this.ws = null;
    this.failWaiting();
    ws?.close(code, reason);
  }

  failWaiting() {
    for (const [, w] of this.waitingFrames) w.reject(Object.assign(new Error("connection closed"), { code: "koppi.offline" }));
    this.waitingFrames.clear();
  }

  connect() {
    if (this.stopped) return;
    clearTimeout(this.retry);
    this.retry = null;
    if (this.ws && this.ws.readyState <= 1) return; // one socket at a time
    if (globalThis.navigator && navigator.onLine === false) {
      this.setConnection("offline");
      return;
    }
    this.setConnection(this.attempt || this.wasOpen ? "reconnecting" : "connecting");
    const ws = new this.WebSocketImpl(this.wsUrl);
    this.ws = ws;
    ws.onopen = () => {
      const resume = {};
      for (const [id, t] of this.threads) if (t.lastSeq) resume[id] = t.lastSeq;
      ws.send(JSON.stringify({ type: "hello", v: 1, resume, device: b64u(this.me.deviceId) }));
    };
    ws.onmessage = (event) => { if (this.ws === ws) this.onFrame(JSON.parse(event.data)); };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.failWaiting();
      if (event.code === 4010 || event.code === 4011) { // device revoked, user disabled: never again
        this.stopped = true;
        this.setConnection("closed", event.reason);
        return;
      }
      if (this.stopped) return;
      this.setConnection(globalThis.navigator && navigator.onLine === false ? "offline" : "reconnecting");
      const wait = this.backoffMs[Math.min(this.attempt, this.backoffMs.length - 1)];
      this.attempt += 1;
      this.retry = setTimeout(() => this.connect(), wait);
    };
  }

  /** Send a frame that the server answers by id (ack or error). */
  request(frame) {
    return new Promise((resolve, reject) => {
      if (!this.ws || this.ws.readyState !== 1) {
        reject(Object.assign(new Error("not connected"), { code: "koppi.offline" }));
        return;
      }
      this.waitingFrames.set(frame.id, { resolve, reject });
      this.ws.send(JSON.stringify(frame));
    });
  }

  onFrame(f) {
    switch (f.type) {
      case "ready":
        this.attempt = 0;
        this.wasOpen = true;
        this.setConnection("open");
        for (const id of Object.keys(f.threads)) this.admit(id);
        for (const [id, code] of Object.entries(f.refused)) {
          const t = this.thread(id);
          t.refusal = code;
          this.changed(t);
        }
        for (const [, t] of this.threads) this.step(t, () => this.resendPending(t));
        break;
      case "joined":
        this.admit(f.thread, true);
        break;
      case "deliver": {
        const t = this.thread(f.thread);
        this.step(t, () => this.deliver(t, f));
        break;
      }
      case "ack":
      case "error": {
        const w = f.id !== undefined ? this.waitingFrames.get(f.id) : null;
        if (w) {
          this.waitingFrames.delete(f.id);
          if (f.type === "ack") w.resolve(f);
          else w.reject(Object.assign(new Error(f.message), { code: f.code }));
        } else if (f.type === "error") {
          this.emit("error", { thread: null, code: f.code, message: f.message });
        }
        break;
      }
      case "removed": {
        const t = this.thread(f.thread);
        t.removed = { reason: f.reason, consent: f.consent };
        for (const m of t.messages.values()) if (m.status === "pending") m.status = "failed";
        this.changed(t);
        break;
      }
      case "consent_changed":
      case "device_revoked":
        for (const t of this.threads.values()) {
          if (f.type === "device_revoked" || t.id === f.thread) this.step(t, () => this.maintain(t, true));
        }
        break;
      default:
        break;
    }
  }

  /** The user takes part in a thread (ready, or joined later): prepare it once. */
  admit(id, fresh = false) {
    const t = this.thread(id);
    t.refusal = null;
    if (fresh) { // joined again after a removal: its backlog comes from seq 1
      t.removed = null;
      t.lastSeq = 0;
      t.prepared = false;
      t.state = null;
      t.buffer = [];
    }
    if (!t.prepared) {
      t.prepared = true;
      this.step(t, () => this.prepare(t));
    }
    this.changed(t);
  }

  // --- joining ---------------------------------------------------------------------------------

  async follow() {
    await this.follower.follow((path) => this.api("GET", path));
  }

  /** Retry a step that needs the log to have caught up (a head at least every few seconds). */
  async withTrust(fn, tries = 12) {
    for (let i = 0; ; i++) {
      try {
        return await fn();
      } catch (e) {
        if (i >= tries || !FOLLOW_AGAIN.has(e?.code)) throw e;
        await sleep(250 * Math.min(i + 1, 4));
        await this.follow();
      }
    }
  }

  async commits(t, after = 0) {
    const out = [];
    for (;;) {
      const page = (await this.api("GET", `/api/threads/${t.id}/commits?after=${after}&limit=${PAGE}`)).envelopes;
      out.push(...page);
      if (page.length < PAGE) return out;
      after = page[page.length - 1].seq;
    }
  }

  /** Verify the thread's chain from genesis and take this device's secrets from it (the sealed
   * snapshot when there is one, else the wraps: the same secrets either way). */
  async prepare(t) {
    t.info = await this.api("GET", `/api/threads/${t.id}`);
    await this.follow();
    if (t.info.genesis) await this.join(t);
    this.changed(t);
    await this.maintain(t);
  }

  async join(t) {
    const genesis = await decodeGenesis(unb64u(t.info.genesis));
    if (!equalBytes(genesis.threadId, uuidBytes(t.id))) {
      throw Object.assign(new Error("the server sent another thread's genesis"), { code: "koppi.bad_genesis" });
    }
    const commits = (await this.commits(t)).map((e) => [unb64u(e.body), e.seq]);
    const snapshot = this.store ? await this.store.open(`thread/${hex(genesis.threadId)}`).catch(() => null) : null;
    try {
      t.state = await this.withTrust(() => (snapshot
        ? restoreThread(genesis, this.me, commits, this.trust, snapshot)
          .catch(() => joinThread(genesis, this.me, commits, this.trust))
        : joinThread(genesis, this.me, commits, this.trust)));
    } catch (e) {
      if (e?.code !== "koppi.not_in_roster" && e?.code !== "koppi.missing_private_key") throw e;
      t.state = null; // admitted, but no member has added this device yet
      return;
    }
    if (t.state.epoch === null || !t.state.epochs.has(t.state.epoch)) {
      t.state = null;
      return;
    }
    await this.save(t);
    const buffered = t.buffer;
    t.buffer = [];
    for (const f of buffered) await this.deliver(t, f, true);
    await this.resendPending(t);
  }

  async save(t) {
    if (t.state) await this.saveState(t.state);
  }

  async saveState(state) {
    if (this.store) await this.store.saveThread(state);
  }

  // --- receiving -------------------------------------------------------------------------------

  async deliver(t, f, again = false) {
    if (!again) {
      if (f.seq <= t.lastSeq) return;
      t.lastSeq = f.seq;
    }
    if (t.removed) return;
    if (f.kind === "commit") {
      if (!t.state) {
        t.info = await this.api("GET", `/api/threads/${t.id}`);
        if (t.info.genesis) await this.join(t); // perhaps the commit that adds this device
      } else if (f.seq > t.state.chain.current.seq) {
        const data = unb64u(f.body);
        const applied = await this.withTrust(() => t.state.apply(data, f.seq, this.trust,
          { live: true, now: this.trust.now() }).catch((e) => {
          if (e?.code !== "koppi.consent_inactive") throw e;
          // Sequenced while its consent version was current (the server checks that); our
          // view is newer: verify it as history.
          return t.state.apply(data, f.seq, this.trust, { live: false });
        }));
        if (applied.removedMe) t.removed = t.removed ?? { reason: "koppi.not_in_roster", consent: null };
        await this.save(t);
        await this.maintain(t);
      }
      this.changed(t);
      return;
    }
    if (!t.state) {
      t.buffer.push(f);
      return;
    }
    const entry = await this.open(t, f);
    const known = t.messages.get(entry.id);
    if (known?.mine && known.status !== "delivered") entry.status = "delivered";
    t.messages.set(entry.id, entry);
    this.changed(t);
  }

  /** Open one delivered message: ThreadState.decrypt's checks here, the cryptography in the
   * worker. An epoch this device holds no secret for is history the consent does not give it
   * ("withheld"), not a failure. */
  async open(t, f) {
    const state = t.state;
    const entry = { id: f.id, seq: f.seq, sequencedAtMs: f.ts, status: "delivered", label: f.label, mine: false };
    try {
      const data = unb64u(f.body);
      const parsed = parse(data);
      const h = parsed.headerFields;
      const fail = (message, code) => Object.assign(new Error(message), { code });
      if (!equalBytes(h.threadId, state.threadId)) throw fail("message of another thread", "koppi.wrong_thread");
      const rec = state.chain.records[h.epoch];
      if (!rec) throw fail("message of an unknown epoch", "koppi.unknown_epoch");
      if (!equalBytes(h.epochId, rec.epochId)) throw fail("epoch_id differs from the applied commit", "koppi.fork");
      const next = state.chain.records[h.epoch + 1];
      if (f.seq <= rec.seq || (next && f.seq >= next.seq)) throw fail("message outside its epoch", "koppi.stale_epoch");
      const epoch = state.epochs.get(h.epoch);
      if (!epoch) {
        entry.status = "withheld";
        return entry;
      }
      const opened = this.worker ? await this.worker.call("open", epoch, data) : await openMessage(epoch, parsed);
      state.replay.check({ header: { ...opened.header, threadId: h.threadId }, wireHash: opened.wireHash });
      const sender = epoch.roster.get(hex(opened.header.sender));
      entry.text = new TextDecoder().decode(opened.body);
      entry.contentType = opened.contentType;
      entry.sentAtMs = Number(opened.header.timestampMs);
      entry.sender = { device: hex(opened.header.sender), user: uuidOf(sender.userId), org: uuidOf(sender.orgId) };
      entry.label = { orgs: opened.header.label.organisations.map(uuidOf).sort(), basis: opened.header.label.basis };
      entry.mine = entry.sender.device === this.deviceHex;
      if (entry.mine && h.epoch === state.epoch) { // never reuse a counter, even after losing the snapshot
        state.counter = Math.max(state.counter ?? 0, Number(opened.header.counter) + 1);
      }
    } catch (e) {
      if (typeof e?.code !== "string") throw e;
      entry.status = "refused";
      entry.code = e.code;
    }
    return entry;
  }

  // --- keeping the roster right ----------------------------------------------------------------

  /** The thread's current consent version as this browser verified it in the log. */
  async currentConsent(t) {
    const listed = (await this.api("GET", `/api/threads/${t.id}/consents`)).consents;
    const first = listed.filter((c) => c.version === 1).sort((a, b) => b.recorded_at - a.recorded_at)[0];
    if (!first) return null;
    const id = unb64u(first.consent_id);
    const newest = Math.max(...listed.filter((c) => c.consent_id === first.consent_id).map((c) => c.version));
    return this.withTrust(async () => {
      const latest = this.trust.consents.latest(id);
      if (!latest || latest.core.version < newest) {
        throw Object.assign(new Error("the consent is not in the log yet"), { code: "koppi.unknown_consent" });
      }
      return { record: latest, coreHash: await latest.core.coreHash(), cover: this.trust.latestConsent(id) };
    });
  }

  /** Devices the server lists for the thread, as the log proves them. */
  async resolve(t) {
    const listed = (await this.api("GET", `/api/threads/${t.id}/devices`)).devices;
    const known = () => listed.every((d) => this.trust.device(unb64u(d.device_id)));
    if (!known()) await this.follow();
    const found = resolveMembers(listed, this.follower, {
      roster: t.roster, approved: [...(this.approvedDevices.get(t.id) ?? [])],
      approvedOrgs: [...(this.approvedOrgs.get(t.id) ?? [])],
    });
    t.waiting = found.needsApproval;
    t.refused = found.refused;
    return found;
  }

  /** Commit what the roster needs: epoch 0 once there is a consent, the removal of devices cut
   * off, the addition of admitted devices the log proves. `urgent`: a consent change or a
   * revocation fences the thread, so follow the log first. */
  async maintain(t, urgent = false) {
    if (t.removed || t.refusal || !t.prepared || this.connection !== "open") return;
    await this.follow();
    if (urgent && t.state) await this.currentConsent(t); // waits until the log shows the change
    if (!t.state) {
      if (t.info?.genesis) return; // someone opened it; a member adds this device
      const consent = await this.currentConsent(t);
      if (!consent || !consent.cover?.active) return;
      await sleep(Math.random() * this.jitterMs);
      await this.openThread(t, consent);
      return;
    }
    if (!t.state.chain.current || !t.state.epochs.has(t.state.epoch)) return;
    const now = this.trust.now();
    let due = t.state.dueRemovals(this.trust, now);
    if (due.length) {
      const consent = await this.currentConsent(t);
      due = t.state.dueRemovals(this.trust, now);
      if (!due.length) return;
      const remove = {};
      for (const id of due) {
        const device = this.trust.devices.get(id);
        const revoked = device && device.revokedAtIndex !== null && device.revokedAtIndex !== undefined;
        remove[id] = revoked ? "device-revoked" : consent?.record.core.status === "revoked" ? "consent-revoked"
          : consent?.cover?.active === false ? "consent-expired" : "consent-narrowed";
      }
      await sleep(Math.random() * this.jitterMs);
      await this.commit(t, { remove, evidence: consent?.coreHash ?? null });
      return;
    }
    const found = await this.resolve(t);
    const roster = new Set(t.roster);
    const add = found.members.filter((m) => !roster.has(hex(m.device.deviceId)));
    this.changed(t);
    if (!add.length) return;
    await sleep(Math.random() * this.jitterMs);
    await this.commit(t, { add });
  }

  /** A member approves adding an organisation new to the thread (the consent covers it; a
   * person decides that the conference wants it now). */
  approveOrganisation(threadId, orgHex) {
    if (!this.approvedOrgs.has(threadId)) this.approvedOrgs.set(threadId, new Set());
    this.approvedOrgs.get(threadId).add(orgHex);
    const t = this.thread(threadId);
    return this.step(t, () => this.maintain(t));
  }

  /** A member approves adding a member's new device that none of their devices in the thread
   * linked, after comparing its fingerprint with its owner (client/trust.py `approved`). */
  approveDevice(threadId, deviceHex) {
    if (!this.approvedDevices.has(threadId)) this.approvedDevices.set(threadId, new Set());
    this.approvedDevices.get(threadId).add(deviceHex);
    const t = this.thread(threadId);
    return this.step(t, () => this.maintain(t));
  }

  async openThread(t, consent) {
    const found = await this.resolve(t);
    const add = found.members;
    if (!add.some((m) => equalBytes(m.device.deviceId, this.me.deviceId))) return; // not proven yet
    const genesisBytes = encodeGenesis({
      threadId: uuidBytes(t.id), clientRef: unhex(t.info.client_ref),
      purpose: t.info.purpose, creator: this.me.deviceId, createdAt: this.trust.now(),
    });
    const state = new ThreadState(await decodeGenesis(genesisBytes), this.me);
    const data = await state.propose(this.trust, { add, evidence: consent.coreHash, now: this.trust.now() });
    let ack;
    try {
      ack = await this.request({ type: "commit", id: b64u(crypto.getRandomValues(new Uint8Array(16))), thread: t.id,
        body: b64u(data), genesis: b64u(genesisBytes) });
    } catch (e) {
      if (e.code === "koppi.stale_commit") return; // another member opened it first: its commit follows
      throw e;
    }
    await state.apply(data, ack.seq, this.trust, { live: true, now: this.trust.now() });
    t.state = state;
    t.info = await this.api("GET", `/api/threads/${t.id}`);
    await this.save(t);
    this.changed(t);
  }

  async commit(t, { add = [], remove = {}, evidence = null }) {
    const state = t.state;
    const data = await state.propose(this.trust, { add, remove, evidence, now: this.trust.now() });
    let ack;
    try {
      ack = await this.request({ type: "commit", id: b64u(crypto.getRandomValues(new Uint8Array(16))), thread: t.id,
        body: b64u(data) });
    } catch (e) {
      state.pending = null;
      if (["koppi.stale_commit", "koppi.epoch_gap", "koppi.bad_prev_hash"].includes(e.code)) return; // another won
      throw e;
    }
    if (!state.chain.current || ack.seq > state.chain.current.seq) {
      await state.apply(data, ack.seq, this.trust, { live: true, now: this.trust.now() });
      await this.save(t);
    }
    this.changed(t);
    await this.resendPending(t);
  }

  poll() {
    if (this.connection !== "open") return;
    for (const t of this.threads.values()) {
      if (t.prepared && !t.removed && !t.refusal) this.step(t, () => this.maintain(t));
    }
    if ([...this.threads.values()].some((t) => t.refusal || t.removed)) this.recheck();
  }

  /** A thread refused at hello may admit us now (a consent recorded or widened): the server
   * says so with `joined`; if a notice was missed, a new hello decides again. */
  async recheck() {
    try {
      const mine = (await this.api("GET", "/api/threads")).threads;
      const now = mine.filter((x) => x.admitted && (this.threads.get(x.thread)?.refusal || this.threads.get(x.thread)?.removed));
      if (now.length && this.ws?.readyState === 1) {
        for (const x of now) {
          const t = this.thread(x.thread);
          t.removed = null;
          t.refusal = null;
          t.prepared = false;
          t.state = null;
          t.lastSeq = 0;
          t.buffer = [];
          t.messages.clear();
        }
        this.ws.close(4000, "admitted again");
      }
    } catch {
      // the next poll asks again
    }
  }

  // --- sending ---------------------------------------------------------------------------------

  /** The label a message starts with: the thread's policy within what the consent lets store. */
  defaultLabel(threadId, myOrg) {
    const t = this.thread(threadId);
    const label = defaultLabel(t.info?.label_policy ?? "own-organisation", uuidBytes(myOrg), t.mayStore);
    return label.organisations.map(uuidOf);
  }

  /** Show `text` at once as pending, then seal and send it; resolves when it is acknowledged. */
  send(threadId, text, orgs, basis = "consent") {
    const t = this.thread(threadId);
    const id = b64u(crypto.getRandomValues(new Uint8Array(16)));
    const entry = { id, seq: null, status: "pending", text, mine: true, sentAtMs: Date.now(), queued: ++this.queued,
      sender: { device: this.deviceHex, user: this.user.user, org: this.user.org },
      label: { orgs: [...orgs].sort(), basis }, tries: 0 };
    t.messages.set(id, entry);
    this.changed(t);
    this.step(t, () => this.transmit(t, entry));
    return id;
  }

  async resendPending(t) {
    for (const m of t.messages.values()) if (m.mine && m.status === "pending" && m.seq === null) await this.transmit(t, m);
  }

  /** Seal (counter persisted first) and send one pending message; on a refusal that the next
   * commit cures, try again after it under the same id. */
  async transmit(t, entry) {
    if (entry.status !== "pending" || entry.inFlight || t.removed) return;
    const state = t.state;
    if (!state || this.connection !== "open" || state.epoch === null || !state.epochs.has(state.epoch)) return;
    entry.inFlight = true;
    let frame;
    try {
      const orgs = entry.label.orgs.map(uuidBytes).sort((a, b) => (hex(a) < hex(b) ? -1 : 1));
      const label = new StorageLabel(orgs, entry.label.basis);
      const body = await this.seal(state, new TextEncoder().encode(entry.text), label, unb64u(entry.id));
      frame = { type: "send", id: entry.id, thread: t.id, epoch: state.epoch, sender: b64u(this.me.deviceId),
        label: { orgs: orgs.map(uuidOf), basis: entry.label.basis }, body: b64u(body) };
    } catch (e) {
      entry.inFlight = false;
      if (e?.code === "koppi.removal_due") {
        this.step(t, () => this.maintain(t, true));
        this.step(t, () => this.transmit(t, entry));
        return;
      }
      entry.status = "failed";
      entry.code = e?.code ?? "koppi.error";
      this.changed(t);
      return;
    }
    this.request(frame).then((ack) => {
      entry.inFlight = false;
      entry.seq = entry.seq ?? ack.seq;
      entry.status = "delivered";
      this.changed(t);
    }, (e) => {
      entry.inFlight = false;
      entry.tries += 1;
      if (e.code === "koppi.offline") return; // sent again after the next ready
      if (RESEND.has(e.code) && entry.tries < 20) {
        setTimeout(() => {
          if (e.code === "koppi.removal_due") this.step(t, () => this.maintain(t, true));
          this.step(t, () => this.transmit(t, entry));
        }, 200);
        return;
      }
      entry.status = "failed";
      entry.code = e.code;
      this.changed(t);
    });
  }

  async seal(state, body, label, messageId) {
    const now = this.trust.now();
    if (!this.worker) {
      return state.encrypt(body, { label, trust: this.trust, now, nowMs: Date.now(), messageId,
        beforeSeal: () => this.saveState(state) });
    }
    const due = state.dueRemovals(this.trust, now);
    if (due.length) throw Object.assign(new Error("roster devices must be removed first"), { code: "koppi.removal_due" });
    state.counter ??= 0;
    const counter = state.counter;
    state.counter += 1;
    await this.saveState(state); // the counter + 1 is on disk before the key is used
    const epoch = state.epochs.get(state.epoch);
    return this.worker.call("seal", epoch, { privateKey: this.me.signing.privateKey, public: this.me.signing.public }, {
      counter, messageId, timestampMs: Date.now(), reuseGuard: crypto.getRandomValues(new Uint8Array(4)),
      label: { organisations: label.organisations, basis: label.basis, retentionDays: 0 },
      contentType: "text/plain", body, treeSize: this.trust.treeSize(), treeHeadHash: await this.trust.treeHeadHash(),
    });
  }
}
