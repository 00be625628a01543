// The customer hub (templates/admin/customers/customer/change_form.html). Its tabs are panels
// `<tab>-group` shown by unfold's Alpine `activeTab` (on <body>).
// - Open "Overview" when the address names no tab and the page shows no form error (a refused
//   save stays on "Details", unfold's "general" tab). Runs before Alpine reads the address.
// - Follow the address when only its #tab changes (a link to another tab of the same page).
(function () {
  "use strict";

  function hub() {
    return document.querySelector("[data-hub-default-tab]");
  }

  document.addEventListener("alpine:init", function () {
    var element = hub();
    if (!element || window.location.hash) return;
    if (document.querySelector(".errornote, .errorlist, .errors")) return;
    var tab = element.getAttribute("data-hub-default-tab");
    if (document.getElementById(tab + "-group")) {
      history.replaceState(null, "", window.location.pathname + window.location.search + "#" + tab);
    }
  });

  window.addEventListener("hashchange", function () {
    if (!hub() || !window.Alpine) return;
    var tab = window.location.hash.replace("#", "");
    if (tab === "general" || document.getElementById(tab + "-group")) {
      window.Alpine.$data(document.body).activeTab = tab;
    }
  });
})();
