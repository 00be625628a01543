// The subscription editor's live preview (billing/admin/subscriptions.py).
// A form marked data-tarif-preview-url posts itself there as it changes and shows the
// returned panel in its [data-tarif-preview] box: the same preview services as the API
// and the portal compute it. No inline script: the page only carries data-* attributes.
(function () {
  "use strict";

  function wire(form) {
    var url = form.getAttribute("data-tarif-preview-url");
    var box = form.querySelector("[data-tarif-preview]");
    if (!url || !box) return;
    var timer = null;
    var sequence = 0;

    function refresh() {
      var mine = ++sequence;
      form.setAttribute("aria-busy", "true");
      fetch(url, {
        method: "POST",
        body: new FormData(form),
        credentials: "same-origin",
        headers: { "X-Requested-With": "XMLHttpRequest" },
      })
        .then(function (response) { return response.text(); })
        .then(function (html) {
          if (mine !== sequence) return; // an older answer arriving late
          box.innerHTML = html;
          form.removeAttribute("aria-busy");
          form.dispatchEvent(new CustomEvent("tarif:preview", { bubbles: true }));
        })
        .catch(function () { form.removeAttribute("aria-busy"); });
    }

    function changed(event) {
      var target = event && event.target;
      if (target && target.name === "customer" && form.hasAttribute("data-tarif-reload-on-customer")) {
        // The price list depends on the customer's currency and mode: reload with it chosen.
        if (target.value) {
          var next = new URL(window.location.href);
          next.searchParams.set("customer", target.value);
          window.location.assign(next.toString());
        }
        return;
      }
      window.clearTimeout(timer);
      timer = window.setTimeout(refresh, 250);
    }

    form.addEventListener("input", changed);
    form.addEventListener("change", changed);
    // Select2 (the searchable pickers) announces changes through jQuery only.
    if (window.django && window.django.jQuery) {
      window.django.jQuery(form).on("select2:select select2:clear", "select", function (event) {
        changed({ target: event.target });
      });
    }
    if (form.querySelector("[data-tarif-preview] [data-tarif-preview-body]") === null) {
      refresh();
    }
  }

  function start() {
    document.querySelectorAll("form[data-tarif-preview-url]").forEach(wire);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
