// Small helpers shared by the page modules: JSON API calls with the CSRF token, base64url,
// and text-only rendering (message and device data are never inserted as HTML).

export function b64u(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function unb64u(text) {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

export function uuidBytes(uuid) {
  const h = uuid.replace(/-/g, "");
  return Uint8Array.from(h.match(/../g), (x) => parseInt(x, 16));
}

export async function api(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  const csrf = sessionStorage.getItem("koppi.csrf");
  if (csrf) headers["X-CSRF-Token"] = csrf;
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await r.json();
  if (!r.ok) throw Object.assign(new Error(data.error?.message ?? r.statusText), { code: data.error?.code, status: r.status });
  return data;
}

export function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

/** The page's words in its language: the JSON data block the server rendered from
 * server/page_text.py (never HTML; read as data, shown with textContent). */
export function pageText(id) {
  return JSON.parse(document.getElementById(id).textContent);
}

/** A text with `{name}` placeholders filled in. */
export function fill(text, values) {
  return text.replace(/\{(\w+)\}/g, (_, k) => String(values[k]));
}
