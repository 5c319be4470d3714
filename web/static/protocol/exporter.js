// Export to an organisation's own records, from the browser: the twin of client/export.py.
//
// The server hands the caller the thread's commits and the messages whose storage label names
// its organisation (GET /api/threads/{id}/export, each page with messages a disclosure it
// records). This module decrypts them as a member device of the thread: it follows the
// transparency log into a TrustStore (follower.js), verifies the thread's chain from genesis
// (joinThread), opens each message (signature, epoch, label covered by the consent in force) and
// then checks what the server cannot be trusted with: that the sealed label is the one the
// server filtered on, and that it names this organisation. A message that fails is not exported
// but listed as refused, with the reason. The JSON is the format "koppi-export/1"
// (docs/protocol.md §11 "Export format"), field for field what the Python client writes.
//
// Unlike client/export.py, the chain is joined from GET /api/threads/{id}/commits (no
// disclosure) *before* the export pages are asked for: a device outside the roster takes nothing
// and leaves no disclosure record behind.

import { b64u, equalBytes, hex, unb64u } from "./encoding.js";
import { LocalProtocolError } from "./errors.js";
import { decodeGenesis } from "./commit.js";
import { joinThread } from "./group.js";

export const FORMAT = "koppi-export/1";
export const PAGE = 500;

/** The export cannot run: the session is of another organisation, or this device is not in
 * the thread's roster. */
export class ExportError extends LocalProtocolError {
  constructor(message, code = "koppi.export") {
    super(message, code);
  }
}

/** A 16-byte id as the server and the Python client write it (lowercase, 8-4-4-4-12). */
export function uuidOf(bytes) {
  const h = hex(bytes);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function uuidBytes(text) {
  const h = String(text).toLowerCase().replace(/-/g, "");
  if (!/^[0-9a-f]{32}$/.test(h)) throw new LocalProtocolError("not a UUID");
  return Uint8Array.from(h.match(/../g), (x) => parseInt(x, 16));
}

/** What a receiving record system refuses beyond ThreadState.decrypt's rules. */
export function checkExported(opened, envelope, org) {
  const label = opened.header.label;
  const sealed = label.organisations.map(uuidOf).sort();
  const served = [...(envelope.label?.orgs ?? [])].sort();
  if (sealed.length !== served.length || sealed.some((o, i) => o !== served[i]) ||
      label.basis !== envelope.label?.basis) {
    throw new ExportError("the sealed storage label differs from the one the server filtered on",
      "koppi.label_mismatch");
  }
  if (!label.organisations.some((o) => equalBytes(o, org))) {
    throw new ExportError("the storage label does not let this organisation store the message",
      "koppi.label_not_covered");
  }
  if (b64u(opened.header.messageId) !== envelope.id) {
    throw new ExportError("the envelope's id is not the sealed message id", "koppi.label_mismatch");
  }
}

/** One exported message, keys in the order client/export.py `ExportedMessage.to_json` writes. */
export function exportedMessage(opened, envelope) {
  const { header, sender } = opened;
  const isText = opened.contentType.startsWith("text/");
  return {
    seq: envelope.seq,
    id: b64u(header.messageId),
    epoch: header.epoch,
    sent_at_ms: header.timestampMs,
    sequenced_at_ms: envelope.ts,
    sender: { device: b64u(sender.deviceId), user: uuidOf(sender.userId), organisation: uuidOf(sender.orgId) },
    label: {
      organisations: [...header.label.organisations].sort((a, b) => (hex(a) < hex(b) ? -1 : 1)).map(uuidOf),
      basis: header.label.basis,
      retention_days: header.label.retentionDays,
    },
    content_type: opened.contentType,
    // As Python's decode("utf-8", errors="replace"): invalid bytes become U+FFFD, a BOM is kept.
    text: isText ? new TextDecoder("utf-8", { ignoreBOM: true }).decode(opened.body) : null,
    body: isText ? null : b64u(opened.body),
  };
}

/** One device exporting what its organisation may store. `get(path)` returns the server's JSON
 * (or throws its error, with `code`); `me` is this device's keys as ThreadState takes them;
 * `clock.nowMs()` dates the export. */
export class Exporter {
  constructor(get, me, follower, clock) {
    Object.assign(this, { get, me, follower, clock });
  }

  async export(thread, org, after = 0) {
    const caller = await this.get("/api/me");
    if (caller.org !== org) {
      throw new ExportError(`this session is of organisation ${caller.org}, not ${org}`, "koppi.forbidden");
    }
    await this.follower.follow(this.get);
    const trust = this.follower.trust;
    const info = await this.get(`/api/threads/${thread}`);
    if (info.genesis === null || info.genesis === undefined) {
      throw new ExportError("the thread has no epoch yet: nothing to export");
    }
    const genesis = await decodeGenesis(unb64u(info.genesis));
    if (!equalBytes(genesis.threadId, uuidBytes(thread))) {
      throw new ExportError("the server sent another thread's genesis", "koppi.bad_genesis");
    }
    const commits = new Map();
    for (const e of await this.pages(`/api/threads/${thread}/commits`, 0)) commits.set(e.seq, e);
    const ordered = [...commits.keys()].sort((a, b) => a - b);
    let state;
    try {
      state = await joinThread(genesis, this.me, ordered.map((s) => [unb64u(commits.get(s).body), s]), trust);
    } catch (err) {
      if (typeof err?.code !== "string") throw err;
      throw new ExportError(`this device cannot read the thread (${err.message}); a member must add it to the ` +
        "thread's roster", err.code);
    }
    const out = {
      format: FORMAT, thread, organisation: org, client_ref: info.client_ref, purpose: info.purpose,
      after, next_after: after, exported_at_ms: this.clock.nowMs(), disclosures: [], messages: [], refused: [],
    };
    const messages = [];
    let applied = ordered.length ? ordered[ordered.length - 1] : 0;
    for (const page of await this.exportPages(thread, after, out)) {
      for (const e of page) {
        if (e.kind !== "commit") {
          messages.push(e);
        } else if (!commits.has(e.seq)) {
          commits.set(e.seq, e);
          if (e.seq > applied) { // sequenced since the commits were fetched: follow it too
            await state.apply(unb64u(e.body), e.seq, trust, { live: false });
            applied = e.seq;
          }
        }
      }
    }
    const orgId = uuidBytes(org);
    for (const m of messages) {
      out.next_after = Math.max(out.next_after, m.seq);
      let opened;
      try {
        opened = await state.decrypt(unb64u(m.body), m.seq);
        checkExported(opened, m, orgId);
      } catch (err) {
        if (typeof err?.code !== "string") throw err;
        out.refused.push({ seq: m.seq, id: m.id, code: err.code, reason: err.message });
        continue;
      }
      out.messages.push(exportedMessage(opened, m));
    }
    if (commits.size) out.next_after = Math.max(out.next_after, ...commits.keys());
    return out;
  }

  async pages(path, after) {
    const out = [];
    for (;;) {
      const page = (await this.get(`${path}?after=${after}&limit=${PAGE}`)).envelopes;
      out.push(...page);
      if (page.length < PAGE) return out;
      after = page[page.length - 1].seq;
    }
  }

  /** Every export page after `after`; each page with messages is one disclosure. */
  async exportPages(thread, after, out) {
    const pages = [];
    for (;;) {
      const page = await this.get(`/api/threads/${thread}/export?after=${after}&limit=${PAGE}`);
      pages.push(page.envelopes);
      if (page.disclosure !== null && page.disclosure !== undefined) out.disclosures.push(page.disclosure);
      if (page.envelopes.length < PAGE) return pages;
      after = page.envelopes[page.envelopes.length - 1].seq;
    }
  }
}
