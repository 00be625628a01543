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
