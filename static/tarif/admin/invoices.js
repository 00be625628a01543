// Invoice editor (invoices/admin/editor.py). The price picker is a select2 box: select2 reports
// a choice with a jQuery event only, which htmx does not hear, so it is re-sent as a native
// "tarif-picked" event for the live totals (hx-trigger="... tarif-picked"). A picked price also
// empties the free amount, which it replaces.
(function () {
  "use strict";

  function wire() {
    var jq = window.django && window.django.jQuery;
    if (!jq) return;
    jq(document).on("select2:select select2:clear", "select[name='price']", function (event) {
      var form = event.target.form;
      if (!form) return;
      var amount = form.querySelector("input[name='unit_amount']");
      if (amount && event.type === "select2:select") amount.value = "";
      form.dispatchEvent(new Event("tarif-picked", { bubbles: true }));
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", wire);
  } else {
    wire();
  }
})();
