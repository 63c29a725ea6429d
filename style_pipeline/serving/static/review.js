// Review page: client-side filters, override buttons, re-run status polling.
// Plain JS, no build step. The API token (when the server needs one) is typed by the user
// and kept in sessionStorage; the page itself never contains it.
"use strict";
(function () {
  const grid = document.getElementById("grid");
  const run = document.getElementById("run-status");
  const date = run.dataset.date;
  const tokenInput = document.getElementById("token");
  const filters = { status: "f-status", code: "f-code", cluster: "f-cluster", role: "f-role", tag: "f-tag", character: "f-character" };

  if (tokenInput) {
    tokenInput.value = sessionStorage.getItem("style_pipeline_token") || "";
    tokenInput.addEventListener("change", () =>
      sessionStorage.setItem("style_pipeline_token", tokenInput.value));
  }

  function applyFilters() {
    const want = {};
    for (const [key, id] of Object.entries(filters)) want[key] = document.getElementById(id).value;
    let shown = 0;
    for (const card of grid.children) {
      const ok = (!want.status || card.dataset.status === want.status)
        && (!want.code || card.dataset.code === want.code)
        && (!want.cluster || card.dataset.cluster === want.cluster)
        && (!want.role || card.dataset.role === want.role)
        && (!want.tag || card.dataset.tags.split("|").includes(want.tag))
        && (!want.character || card.dataset.characters.split("|").includes(want.character));
      card.hidden = !ok;
      if (ok) shown += 1;
    }
    document.getElementById("shown").textContent = `${shown} of ${grid.children.length} shown`;
  }
  for (const id of Object.values(filters)) document.getElementById(id).addEventListener("change", applyFilters);
  applyFilters();

  function showRun(text, cls) {
    run.textContent = text;
    run.className = "run " + (cls || "");
  }

  async function override(card, action) {
    const headers = { "Content-Type": "application/json" };
    const token = tokenInput ? tokenInput.value : "";
    if (token) headers.Authorization = "Bearer " + token;
    card.classList.add("busy");
    try {
      const response = await fetch(`/v1/days/${date}/overrides`, {
        method: "POST", headers, body: JSON.stringify({ frame_id: card.dataset.frame, action }),
      });
      const body = await response.json();
      if (!response.ok) {
        showRun(`${action} refused: ${body.code}: ${typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)}`, "error");
        return;
      }
      const ov = card.querySelector(".ov") || document.createElement("span");
      ov.className = "ov";
      ov.textContent = action === "clear" ? "" : (action === "lock_in" ? "locked in" : "excluded");
      card.querySelector(".decision").appendChild(ov);
      document.getElementById("ov-lock-in").textContent = body.overrides.lock_in.length;
      document.getElementById("ov-exclude").textContent = body.overrides.exclude.length;
      poll(body.run.id);
    } finally {
      card.classList.remove("busy");
    }
  }

  grid.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (button) override(button.closest("article.card"), button.dataset.action);
  });

  let polling = null;
  async function poll(runId) {
    run.dataset.runId = runId;
    if (polling) return;
    polling = runId;
    try {
      for (;;) {
        const response = await fetch(`/v1/runs/${run.dataset.runId}`);
        const record = await response.json();
        if (!response.ok) { showRun(`run ${record.code}: ${record.detail}`, "error"); return; }
        showRun(`re-run of ${record.date} (${record.selection}): ${record.status}${record.detail ? " - " + record.detail : ""}`, record.status);
        if (["SUCCESS", "FAILURE", "CANCELED"].includes(record.status)) {
          if (record.id === run.dataset.runId) { await refresh(); return; }
          continue;  // a newer run was requested meanwhile: follow it
        }
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    } finally {
      polling = null;
    }
  }

  async function refresh() {
    const response = await fetch(`/v1/days/${date}`);
    if (!response.ok) return;
    const day = await response.json();
    for (const f of day.frames) {
      const card = document.getElementById("f-" + f.frame_id);
      if (!card) continue;
      card.dataset.status = f.status;
      card.dataset.code = f.code;
      card.classList.remove("kept", "dropped", "undecided");
      card.classList.add(f.status);
      card.querySelector(".badge").textContent = f.status;
      card.querySelector(".code").textContent = f.code;
      card.querySelector(".reason").textContent = f.reason || "";
      card.dataset.role = f.role || "";
      card.dataset.tags = (f.diversity_tags || []).join("|");
      card.querySelector(".role").textContent = f.role || "";
    }
    const s = day.summary;
    document.getElementById("summary-line").textContent =
      `${s.frames} frames · ${s.kept} kept · ${s.dropped} dropped` +
      (s.undecided ? ` · ${s.undecided} undecided` : "") +
      ` · clusters covered ${s.clusters_covered} of ${s.clusters}` +
      (s.outliers ? ` · ${s.outliers} outliers` : "");
    for (const [name, state] of Object.entries(day.tables)) {
      const row = document.querySelector(`tr[data-table="${name}"]`);
      if (!row) continue;
      row.lastElementChild.textContent = state;
      row.className = state === "ok" ? "" : "missing";
    }
    await refreshSummary();
    applyFilters();
    run.dataset.refreshed = "1";
    showRun(run.textContent + " - decisions refreshed", run.className.replace("run ", ""));
  }

  // Coverage, role counts and judge spend change with a re-run: take them (and the role and
  // tag filters' options) from the freshly rendered page rather than re-building them here.
  async function refreshSummary() {
    const response = await fetch(`/review/${date}`);
    if (!response.ok) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    const summary = fresh.getElementById("day-summary");
    if (summary) document.getElementById("day-summary").replaceWith(summary);
    // Why-cards too (role, contest, tags change with the run); keep the open/closed state.
    for (const why of document.querySelectorAll("#grid details.why")) {
      const card = why.closest("article.card");
      const next = card && fresh.getElementById(card.id)?.querySelector("details.why");
      if (!next) continue;
      next.open = why.open;
      why.replaceWith(next);
    }
    for (const id of ["f-role", "f-tag", "f-character"]) {
      const select = document.getElementById(id);
      const next = fresh.getElementById(id);
      if (!next) continue;
      const value = select.value;
      select.innerHTML = next.innerHTML;
      select.disabled = next.disabled;
      select.value = [...select.options].some((o) => o.value === value) ? value : "";
    }
  }

  if (run.dataset.runId) poll(run.dataset.runId);
})();
