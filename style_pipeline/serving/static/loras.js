// LoRA page: promote / roll back through the JSON API, then reload to show the new history.
// The API token is typed by the user and kept in sessionStorage; the page never contains it.
"use strict";
(function () {
  const TOKEN_KEY = "style_pipeline_token";
  const token = document.getElementById("token");
  const status = document.getElementById("status");
  token.value = sessionStorage.getItem(TOKEN_KEY) || "";
  token.addEventListener("change", () => sessionStorage.setItem(TOKEN_KEY, token.value));

  async function send(path, body) {
    const headers = { "Content-Type": "application/json" };
    if (token.value) headers.Authorization = "Bearer " + token.value;
    body.reason = document.getElementById("reason").value;
    status.textContent = "…";
    const response = await fetch(path, { method: "POST", headers, body: JSON.stringify(body) });
    const answer = await response.json();
    if (!response.ok) {
      status.textContent = `${answer.code || response.status}: ${typeof answer.detail === "string" ? answer.detail : JSON.stringify(answer.detail)}`;
      status.className = "bad";
      return;
    }
    status.textContent = `live: ${answer.version}`;
    window.location.reload();
  }

  for (const button of document.querySelectorAll("button.promote")) {
    button.addEventListener("click", () => send("/v1/loras/promote", { version: button.dataset.version }));
  }
  document.getElementById("rollback").addEventListener("click", () => send("/v1/loras/rollback", {}));
})();
