// trajforge review: keyboard shortcuts and marks. Plain JS, no build step.
// List page: j/k move the selection, Enter/o open it, a/r mark it.
// Trajectory page: a accept, r reject, c comment, j/k next/previous, u back to the list.
(function () {
  "use strict";
  const $ = (sel) => document.querySelector(sel);
  const reviewerBox = $("#reviewer");
  if (reviewerBox) {
    reviewerBox.value = localStorage.getItem("trajforge-reviewer") || "";
    reviewerBox.addEventListener("change", () => localStorage.setItem("trajforge-reviewer", reviewerBox.value));
  }

  async function mark(id, decision, comment) {
    const reviewer = localStorage.getItem("trajforge-reviewer") || "";
    const res = await fetch("/api/marks/" + encodeURIComponent(id), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ decision, comment: comment || "", reviewer }),
    });
    if (!res.ok) throw new Error("mark not saved: " + res.status + " " + (await res.text()));
    return res.json();
  }

  function showMark(el, decision) {
    el.className = "mark " + (decision || "none");
    el.textContent = decision || (el.id === "mark-status" ? "not reviewed" : "—");
  }

  function typing(ev) {
    const tag = (ev.target.tagName || "").toLowerCase();
    return tag === "textarea" || tag === "input" || tag === "select" || ev.ctrlKey || ev.metaKey || ev.altKey;
  }

  // ---- trajectory page
  const traj = $("#trajectory");
  if (traj) {
    const id = traj.dataset.id;
    const status = $("#mark-status");
    const comment = $("#comment");
    const act = async (decision) => {
      status.textContent = "saving…";
      try {
        const saved = await mark(id, decision, comment.value);
        showMark(status, saved.decision);
        if (saved.decision === null) comment.value = "";
      } catch (err) {
        status.className = "mark reject";
        status.textContent = err.message;
      }
    };
    document.querySelectorAll("#review button").forEach((b) => b.addEventListener("click", () => act(b.dataset.decision)));
    comment.addEventListener("keydown", (ev) => { if (ev.key === "Escape") comment.blur(); });
    document.addEventListener("keydown", (ev) => {
      if (typing(ev)) return;
      const go = (sel) => { const a = $(sel); if (a) location.href = a.href; };
      if (ev.key === "a") act("accept");
      else if (ev.key === "r") act("reject");
      else if (ev.key === "c") { ev.preventDefault(); comment.focus(); }
      else if (ev.key === "j") go("#next");
      else if (ev.key === "k") go("#prev");
      else if (ev.key === "u") go("#back");
    });
  }

  // ---- list page
  const list = $("#list");
  if (list) {
    document.querySelectorAll("#filters select").forEach((s) => s.addEventListener("change", () => $("#filters").submit()));
    const rows = Array.from(document.querySelectorAll("tr.row"));
    let at = -1;
    const select = (i) => {
      if (!rows.length) return;
      at = Math.max(0, Math.min(rows.length - 1, i));
      rows.forEach((r, k) => r.classList.toggle("selected", k === at));
      rows[at].scrollIntoView({ block: "nearest" });
    };
    const markRow = async (decision) => {
      if (at < 0) return;
      const cell = rows[at].querySelector(".mark-cell span");
      const saved = await mark(rows[at].dataset.id, decision, "");
      showMark(cell, saved.decision);
    };
    document.addEventListener("keydown", (ev) => {
      if (typing(ev)) return;
      if (ev.key === "j") select(at + 1);
      else if (ev.key === "k") select(at - 1);
      else if ((ev.key === "Enter" || ev.key === "o") && at >= 0) location.href = rows[at].dataset.href;
      else if (ev.key === "a") markRow("accept");
      else if (ev.key === "r") markRow("reject");
    });
    const build = $("#build-reviewed");
    build.addEventListener("click", async () => {
      const out = $("#export-status");
      out.textContent = "building…";
      const res = await fetch("/api/reviewed-shards", { method: "POST" });
      const body = await res.json();
      out.textContent = res.ok ? `${body.rows} rows, ${body.tokens} tokens -> ${body.dir}` : body.detail;
    });
  }
})();
