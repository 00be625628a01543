// Brand change form: a live preview of a sample invoice with the UNSAVED settings.
// The form is posted (FormData, with the CSRF token and any new logo) to the preview
// endpoint; the HTML answer goes into a sandboxed iframe's srcdoc (the admin forbids
// framing its own pages). No inline script: CSP is script-src 'self'.
(function () {
  "use strict";

  function start() {
    var pane = document.querySelector(".tarif-brand-preview");
    if (!pane) return;
    var form = pane.closest("form");
    var frame = pane.querySelector("[data-preview-frame]");
    var status = pane.querySelector("[data-preview-status]");
    var url = pane.getAttribute("data-preview-url");
    var timer = null;
    var generation = 0;

    function refresh() {
      var mine = ++generation;
      status.textContent = "…";
      fetch(url, { method: "POST", body: new FormData(form), credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok) throw new Error(response.status + " " + response.statusText);
          return response.text();
        })
        .then(function (html) {
          if (mine !== generation) return; // a newer preview is on its way
          frame.srcdoc = html;
          status.textContent = "";
        })
        .catch(function (error) {
          if (mine === generation) status.textContent = error.message;
        });
    }

    function later() {
      clearTimeout(timer);
      timer = setTimeout(refresh, 400);
    }

    form.addEventListener("input", later);
    form.addEventListener("change", later);
    pane.querySelector("[data-preview-refresh]").addEventListener("click", refresh);
    refresh();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
