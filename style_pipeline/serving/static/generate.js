// The /generate page: posts to /v1/generate (or /strip) with fetch and shows the PNG.
// The API token lives in sessionStorage (this tab only) and is never put into the page.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const TOKEN_KEY = "style_pipeline_token";  // shared with the review and LoRA pages
  const strip = document.currentScript.dataset.strip.split(",").map(Number);
  let busy = false;
  let pending = false; // the slider moved while a generation ran: run once more at the end

  $("token").value = sessionStorage.getItem(TOKEN_KEY) || "";
  $("token").addEventListener("change", () => sessionStorage.setItem(TOKEN_KEY, $("token").value));

  function status(text, isError) {
    $("status").textContent = text;
    $("status").className = isError ? "error" : "";
  }

  function body(extra) {
    const number = (id) => ($(id).value === "" ? null : Number($(id).value));
    const data = {
      prompt: $("prompt").value,
      negative_prompt: $("negative_prompt").value,
      seed: number("seed"),
      steps: number("steps"),
      guidance: number("guidance"),
      width: number("width"),
      height: number("height"),
      lora_scale: Number($("lora_scale").value),
      version: $("version").value || null,
      ticket: Math.random().toString(36).slice(2, 14),
    };
    return Object.assign(data, extra);
  }

  async function pollQueue(ticket, done) {
    while (!done.value) {
      try {
        const state = await (await fetch("/v1/queue?ticket=" + ticket)).json();
        if (!done.value && state.position !== null) {
          status(state.position === 0 ? "generating…" : "waiting: position " + state.position + " in the queue");
        }
      } catch (e) { /* the answer itself reports errors */ }
      await new Promise((r) => setTimeout(r, 400));
    }
  }

  async function run(path, extra, img, caption) {
    if (busy) { if (path === "/v1/generate") pending = true; return; }
    busy = true;
    const payload = body(extra);
    const done = { value: false };
    status("queued…");
    pollQueue(payload.ticket, done);
    const headers = { "Content-Type": "application/json" };
    const token = $("token").value.trim();
    if (token) headers["Authorization"] = "Bearer " + token;
    try {
      const response = await fetch(path, { method: "POST", headers, body: JSON.stringify(payload) });
      done.value = true;
      if (!response.ok) {
        const problem = await response.json().catch(() => ({}));
        const detail = typeof problem.detail === "string" ? problem.detail : JSON.stringify(problem.detail);
        status(response.status + " " + (problem.code || "") + ": " + detail, true);
        return;
      }
      const h = response.headers;
      URL.revokeObjectURL(img.src);
      img.src = URL.createObjectURL(await response.blob());
      img.hidden = false;
      img.dataset.scale = h.get("X-Lora-Scale");
      caption.textContent = "scale " + h.get("X-Lora-Scale") + " · " + h.get("X-Lora-Version") +
        " · seed " + h.get("X-Seed") + " · " + h.get("X-Width") + "×" + h.get("X-Height") +
        " · " + h.get("X-Generation-Ms") + " ms";
      status("done (queue position on arrival: " + h.get("X-Queue-Position") + ")");
    } catch (e) {
      status("request failed: " + e, true);
    } finally {
      done.value = true;
      busy = false;
      if (pending) { pending = false; generate(); }
    }
  }

  const generate = () => run("/v1/generate", {}, $("image"), $("image-caption"));
  $("lora_scale").addEventListener("input", () => {
    $("lora_scale_value").textContent = Number($("lora_scale").value).toFixed(2);
  });
  $("lora_scale").addEventListener("change", generate);
  $("generate-form").addEventListener("submit", (event) => { event.preventDefault(); generate(); });
  $("strip").addEventListener("click", () =>
    run("/v1/generate/strip", { scales: strip }, $("strip-image"), $("strip-caption")));
})();
