// homevitals console: refresh the alert inbox without a reload. Served by the console itself.
"use strict";
(function () {
  const box = document.getElementById("inbox");
  const poll = parseFloat((document.querySelector('meta[name="poll"]') || {}).content || "0");
  if (!box || !(poll > 0)) return;
  async function refresh() {
    // Never replace the list under someone typing a note.
    if (box.contains(document.activeElement) && document.activeElement.tagName === "INPUT") return;
    try {
      const r = await fetch(box.dataset.src, { credentials: "same-origin", cache: "no-store" });
      if (r.redirected || r.status === 401) { window.location = "/login"; return; }
      if (!r.ok) return;
      const html = await r.text();  // escaped by the server; no markup is built here
      if (html !== box.innerHTML) box.innerHTML = html;
      box.dataset.updated = String(Date.now());
    } catch (e) { /* offline for a moment: the next poll tries again */ }
  }
  setInterval(refresh, poll * 1000);
})();
