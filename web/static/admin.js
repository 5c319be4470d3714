// An organisation admin: keeps the organisation's signing key in this browser (non-extractable),
// approves devices after comparing fingerprints (the certificate is signed here, the server only
// checks and logs it), revokes devices, manages the organisation's professionals (add, roles,
// disable, enable; the server enforces every rule) and reads the audit trail. Data is rendered
// as text only, in the page's language (server/page_text.py ADMIN_PAGE). A user without the
// org-admin role is told so; the server refuses them every action anyway.

import { KeyStore } from "/static/protocol/keystore.js";
import { SigningKey } from "/static/protocol/primitives.js";
import { hex } from "/static/protocol/encoding.js";
import { ROLES, issueDeviceCert, issueDeviceRevocation, issueRotationRequest } from "/static/protocol/identity.js";
import { deviceFingerprint } from "/static/protocol/fingerprint.js";
import { api, el, fill, pageText, unb64u, uuidBytes } from "/static/app-common.js";

const T = pageText("admin-text");

const keyInfo = document.getElementById("org-key");
const pendingList = document.getElementById("pending");
const approvedList = document.getElementById("approved");
const trail = document.getElementById("audit");
const message = document.getElementById("admin-status");
const rotationInfo = document.getElementById("rotation-status");
const addUser = document.getElementById("add-user");
const userRows = document.querySelector("#users tbody");
const userMessage = document.getElementById("users-status");
let orgKey = null;
let me = null;

/** A refusal or failure: its code, and its text in the page's language where there is one. */
const failure = (e) => `${e.code ?? "error"}: ${T[e.code] ?? e.message}`;
const roleName = (role) => T[`role.${role}`] ?? role;

async function newKeyPair() {
  const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
  return { key: pair.privateKey, public: new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey)) };
}

async function loadKey(create) {
  const store = await KeyStore.open();
  let saved = await store.get("keys", "org");
  if (!saved && create) {
    saved = await newKeyPair();
    await store.put("keys", "org", saved);
  }
  orgKey = saved ? new SigningKey(saved.key, saved.public) : null;
  keyInfo.textContent = orgKey ? hex(orgKey.public) : T.no_key;
}

// A rotation: the next key is made here and waits as "org-next" until the operator's root
// signature puts it in the log; then it becomes the key this browser signs with.
async function rotate() {
  const state = await api("GET", "/api/org/key");
  if (!orgKey || !state.current) throw Object.assign(new Error(T.nothing_to_rotate), { code: "koppi.no_org_key" });
  const store = await KeyStore.open();
  const next = await newKeyPair();
  const request = await issueRotationRequest(orgKey, unb64u(state.current.org_cert), next.public,
    Math.floor(Date.now() / 1000));
  await store.put("keys", "org-next", next);
  await api("POST", "/api/org/rotation", { request: b64(request) });
  await showKeyState();
}

async function showKeyState() {
  const state = await api("GET", "/api/org/key");
  const store = await KeyStore.open();
  const next = await store.get("keys", "org-next");
  const logged = state.current ? hex(unb64u(state.current.org_public)) : null;
  if (next && logged === hex(next.public)) {
    await store.put("keys", "org-previous", await store.get("keys", "org"));
    await store.put("keys", "org", next);
    await store.put("keys", "org-next", null);
    await loadKey(false);
  }
  const pending = await store.get("keys", "org-next");
  if (state.rotation_request && pending) {
    rotationInfo.dataset.state = "waiting";
    rotationInfo.textContent = fill(T.rotation_waiting, { key: hex(pending.public) });
  } else if (state.current) {
    rotationInfo.dataset.state = "current";
    rotationInfo.textContent = fill(T.key_current, { generation: state.current.generation });
  } else {
    rotationInfo.dataset.state = "none";
    rotationInfo.textContent = T.key_not_admitted;
  }
}

// The certificate carries the professional's roles as the organisation has set them (a
// consent recorder's device must say so: clients check the role in the certificate).
async function approve(device) {
  const now = Math.floor(Date.now() / 1000);
  const owner = (await api("GET", "/api/org/users")).users.find((u) => u.user === device.user);
  const roles = owner && owner.roles.length ? owner.roles : ["professional"];
  const cert = await issueDeviceCert(orgKey, {
    orgId: uuidBytes(me.org), userId: uuidBytes(device.user), signingPublic: unb64u(device.signing_public),
    kemPublic: unb64u(device.kem_public), roles, notBefore: now, notAfter: now + 365 * 86400,
  });
  await api("POST", `/api/org/devices/${device.device_id}/certificate`, { certificate: b64(cert) });
}

async function revoke(device) {
  const rev = await issueDeviceRevocation(orgKey, {
    orgId: uuidBytes(me.org), deviceId: unb64u(device.device_id), reason: "lost", issuedAt: Math.floor(Date.now() / 1000),
  });
  await api("POST", `/api/org/devices/${device.device_id}/revocation`, { revocation: b64(rev) });
}

function b64(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function row(device, owner, label, done, action) {
  const li = el("li");
  // Computed here from the very keys approve() certifies, never taken from the server's word.
  const name = `${owner ?? device.user.slice(0, 8)} · ${device.label}`;
  const shown = el("span", name, { class: "fingerprint" });
  li.append(shown);
  deviceFingerprint(unb64u(device.signing_public), unb64u(device.kem_public)).then(
    (f) => { shown.textContent = `${name} — ${f.words.join(" ")} — ${f.hex}`; },
    (e) => { shown.textContent = `${name} — ${fill(T.no_fingerprint, { code: e.code ?? e.message })}`; },
  );
  const button = el("button", label, { type: "button" });
  button.addEventListener("click", async () => {
    try {
      await action(device);
      message.textContent = fill(done, { name });
    } catch (e) {
      message.textContent = failure(e);
    }
    await refresh();
  });
  li.append(button);
  return li;
}

function roleBox(role, attrs = {}) {
  const label = el("label", undefined, { class: "role" });
  const box = el("input", undefined, { type: "checkbox", value: role, ...attrs });
  label.append(box, el("span", roleName(role)));
  return { label, box };
}

// Run one action on a professional, report it (or the server's refusal), and redraw.
async function act(done, action) {
  try {
    await action();
    userMessage.textContent = done;
  } catch (e) {
    userMessage.textContent = failure(e);
  }
  await refresh().catch((e) => { message.textContent = failure(e); });
}

function userRow(user) {
  const self = user.user === me.user;
  const status = user.disabled ? "disabled" : "active";
  const username = user.username;
  const tr = el("tr", undefined, { "data-username": user.username, "data-status": status, "data-roles": user.roles.join(" ") });
  const roles = el("td");
  const boxes = [];
  for (const role of ROLES) {
    const { label, box } = roleBox(role, { "aria-label": fill(T.role_of, { role: roleName(role), username }) });
    box.checked = user.roles.includes(role);
    box.disabled = self && role === "org-admin"; // the server refuses removing one's own admin role
    box.addEventListener("change", () => {
      const wanted = boxes.filter((b) => b.checked).map((b) => b.value);
      act(fill(T.roles_set, { username, roles: wanted.map(roleName).join(", ") || T.no_roles }), () =>
        api("PUT", `/api/org/users/${user.user}/roles`, { roles: wanted }));
    });
    boxes.push(box);
    roles.append(label);
  }
  const verb = user.disabled ? "enable" : "disable";
  const button = el("button", T[verb], { type: "button", "aria-label": fill(T[`${verb}_user`], { username }) });
  button.disabled = self; // the server refuses disabling oneself
  button.addEventListener("click", () =>
    act(fill(T[`${verb}d`], { username }), () => api("POST", `/api/org/users/${user.user}/${verb}`)));
  const action = el("td");
  action.append(button);
  tr.append(el("th", username, { scope: "row" }), roles, el("td", T[`status.${status}`]), action);
  return tr;
}

function addProfessional(event) {
  event.preventDefault();
  const data = new FormData(addUser);
  const username = String(data.get("username"));
  act(fill(T.added, { username }), async () => {
    await api("POST", "/api/org/users", { username, password: data.get("password"), roles: data.getAll("roles") });
    addUser.reset();
  });
}

// An audit subject is a device id (hex) or a user id, possibly followed by detail (new roles).
function subjectText(subject, names) {
  const [id, ...rest] = subject.split(" ");
  return names.has(id) ? [names.get(id), ...rest].join(" ") : subject.slice(0, 16);
}

async function refresh() {
  await showKeyState();
  const users = (await api("GET", "/api/org/users")).users;
  userRows.replaceChildren(...users.map(userRow));
  const names = new Map(users.map((u) => [u.user, u.username]));
  const pending = (await api("GET", "/api/org/devices?status=pending")).devices;
  const approved = (await api("GET", "/api/org/devices?status=approved")).devices;
  pendingList.replaceChildren(...pending.map((d) => row(d, names.get(d.user), T.approve, T.approved, approve)));
  approvedList.replaceChildren(...approved.map((d) => row(d, names.get(d.user), T.revoke, T.revoked, revoke)));
  const events = (await api("GET", "/api/org/audit")).events;
  trail.replaceChildren(...events.map((e) => el("li", `${new Date(e.at).toISOString()} ${e.action} ${subjectText(e.subject, names)}`)));
}

async function start() {
  // Controls answer from the first moment (a click before the first fetch returns is not lost);
  // `data-ready` tells when the page shows the server's state.
  addUser.addEventListener("submit", addProfessional);
  document.getElementById("create-key").addEventListener("click", () => loadKey(true));
  document.getElementById("refresh").addEventListener("click", refresh);
  document.getElementById("rotate-key").addEventListener("click", () =>
    rotate().catch((e) => { message.textContent = failure(e); }));
  me = await api("GET", "/api/me");
  if (!me.roles.includes("org-admin")) {
    // Nothing here is for this user (the server refuses each action too): say so, show nothing.
    document.getElementById("admin-refused").hidden = false;
    document.getElementById("admin-controls").hidden = true;
    document.body.dataset.ready = "true";
    return;
  }
  const newRoles = document.getElementById("new-roles");
  for (const role of ROLES) {
    const { label, box } = roleBox(role, { name: "roles" });
    box.defaultChecked = role === "professional";
    newRoles.append(label);
  }
  await loadKey(false);
  await refresh();
  document.body.dataset.ready = "true";
}

start().catch((e) => {
  message.textContent = failure(e);
  if (e.code === "koppi.unauthenticated") {
    document.getElementById("admin-refused").textContent = T["koppi.unauthenticated"];
    document.getElementById("admin-refused").hidden = false;
    document.getElementById("admin-controls").hidden = true;
  }
});
