// Log in over the JSON API; the session cookie is HttpOnly, the CSRF token is kept for later calls.
const form = document.getElementById("login");
const status = document.getElementById("status");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = new FormData(form);
  status.textContent = "…";
  const response = await fetch("/api/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: data.get("username"), password: data.get("password") }),
  });
  const body = await response.json();
  if (response.ok) {
    sessionStorage.setItem("koppi.csrf", body.csrf_token);
    status.textContent = `Logged in as ${body.username}.`;
    document.getElementById("after-login").hidden = false; // on to the case conferences
  } else {
    status.textContent = body.error.message;
  }
});
