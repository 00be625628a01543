/* Storefront pages (issue 17). No inline script, no eval: CSP script-src 'self' is enough.
 * 1. The monthly/yearly toggle works with CSS alone; this keeps ?interval= in the address so a
 *    reload or a shared link shows the same period.
 * 2. Inside the embed iframe, tell the host page our height so it can size the frame. */
(function () {
  "use strict";
  document.addEventListener("change", function (event) {
    var target = event.target;
    if (!target || target.name !== "interval" || !window.history || !window.history.replaceState) return;
    var url = new URL(window.location.href);
    url.searchParams.set("interval", target.value);
    window.history.replaceState(null, "", url.toString());
  });

  var tableId = document.body && document.body.getAttribute("data-embed");
  if (!tableId || window.parent === window) return;
  var lastHeight = 0;
  function report() {
    var height = Math.ceil(document.documentElement.scrollHeight);
    if (height === lastHeight) return;
    lastHeight = height;
    // Only a height and the table's public id: nothing secret, so any embedding origin may read it.
    window.parent.postMessage({ type: "tarif-pricing-table:height", id: tableId, height: height }, "*");
  }
  if (window.ResizeObserver) new ResizeObserver(report).observe(document.documentElement);
  window.addEventListener("load", report);
  document.addEventListener("change", function () { window.setTimeout(report, 0); });
  report();
})();
