/* Follows running billing runs in the operator console.
 *
 * Every element marked data-billing-run-progress with data-status="running" polls
 * its data-url (the admin's JSON progress endpoint) and updates its <progress> bar
 * and [data-field] texts; when the run stops running the page reloads once to show
 * the final state. Served from static: the CSP allows no inline script.
 */
(function () {
  "use strict";

  var POLL_MS = 2000;
  var FIELDS = ["processed", "total", "percent", "invoices_created", "invoices_per_second", "failures", "status_label"];

  function render(box, data) {
    var bar = box.querySelector("progress");
    if (bar) {
      bar.max = Math.max(data.total, 1);
      bar.value = data.total ? data.processed : (data.status === "done" ? 1 : 0);
      bar.textContent = data.percent + " %";
    }
    FIELDS.forEach(function (name) {
      // The endpoint sends "<name>_label" already formatted for the reader's language when it matters.
      var text = data[name + "_label"] !== undefined ? data[name + "_label"] : data[name];
      box.querySelectorAll('[data-field="' + name + '"]').forEach(function (element) {
        element.textContent = text;
      });
    });
  }

  function poll(box, failures) {
    fetch(box.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (data) {
        render(box, data);
        if (data.status !== "running") {
          window.location.reload();
          return;
        }
        window.setTimeout(function () { poll(box, 0); }, POLL_MS);
      })
      .catch(function () {
        // Back off while the server is unreachable, and give up after a few minutes.
        if (failures < 20) {
          window.setTimeout(function () { poll(box, failures + 1); }, POLL_MS * 5);
        }
      });
  }

  function start() {
    document.querySelectorAll('[data-billing-run-progress][data-status="running"]').forEach(function (box) {
      window.setTimeout(function () { poll(box, 0); }, POLL_MS);
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
