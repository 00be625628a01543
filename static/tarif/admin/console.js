// Tarif console behaviours, loaded on every console page (django-unfold SCRIPTS setting).
// No inline script is allowed by the Content-Security-Policy: pages mark elements with
// data-* attributes and this file wires them.
(function () {
  "use strict";

  // <form data-confirm="Finalize invoice F-2026-0042?">: ask before submitting.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  }, true);
})();

// i18n & fit (engineer 7): stacked rows (tablets) label each cell with its column name from
// data-label; Django gives it in lower case ("reste à payer") and unfold's title case reads
// "Reste À Payer". Capitalise the first letter only (console.css drops the title case),
// also in rows htmx swaps in.
(function () {
  "use strict";

  function sentenceCaseLabels(root) {
    (root.querySelectorAll ? root : document).querySelectorAll("[data-label]").forEach(function (cell) {
      var label = cell.getAttribute("data-label");
      if (label && label.charAt(0) !== label.charAt(0).toUpperCase()) {
        cell.setAttribute("data-label", label.charAt(0).toUpperCase() + label.slice(1));
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () { sentenceCaseLabels(document); });
  document.addEventListener("htmx:afterSwap", function (event) { sentenceCaseLabels(event.target); });
})();
