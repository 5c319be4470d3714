// Log in over the JSON API; the session cookie is HttpOnly, the CSRF token is kept for later calls.
// Then the way on: the case conferences (/app), or enrolling this browser first (/devices).
import { fill, pageText } from "/static/app-common.js";

const T = pageText("login-text");
const form = document.getElementById("login");
const status = document.getElementById("status");
const next = document.getElementById("login-next");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = new FormData(form);
  next.hidden = true;
  status.textContent = T.working;
  const response = await fetch("/api/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: data.get("username"), password: data.get("password") }),
  });
  const body = await response.json();
  if (response.ok) {
    sessionStorage.setItem("koppi.csrf", body.csrf_token);
    status.textContent = fill(T.done, { username: body.username });
    next.hidden = false;
    document.getElementById("app-link").focus();
  } else {
    status.textContent = T[body.error?.code] ?? `${T.error}: ${body.error?.message ?? response.statusText}`;
  }
});
