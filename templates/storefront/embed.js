/* Tarif pricing table embed. Put <script src="…/pricing/prctbl_…/embed.js" async></script> on your page and
 * <tarif-pricing-table data-id="prctbl_…"></tarif-pricing-table> (or <div data-tarif-pricing-table="prctbl_…">)
 * where the table goes. No eval, no inline code: your CSP needs script-src and frame-src for this origin. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !script.src) return;
  var origin = new URL(script.src).origin;
  var frames = [];

  function idOf(node) {
    return node.getAttribute("data-id") || node.getAttribute("data-tarif-pricing-table") || "";
  }

  function mount(node) {
    if (node.getAttribute("data-tarif-mounted")) return;
    var id = idOf(node);
    if (!/^prctbl_[A-Za-z0-9]+$/.test(id)) return;
    node.setAttribute("data-tarif-mounted", "1");
    var frame = document.createElement("iframe");
    var lang = node.getAttribute("data-lang") || document.documentElement.lang || "";
    frame.src = origin + "/pricing/" + encodeURIComponent(id) + "/embed" + (lang ? "?lang=" + encodeURIComponent(lang) : "");
    frame.title = node.getAttribute("data-title") || "Pricing";
    frame.loading = "lazy";
    frame.style.width = "100%";
    frame.style.border = "0";
    frame.style.minHeight = "420px";
    frame.setAttribute("data-tarif-id", id);
    node.appendChild(frame);
    frames.push(frame);
  }

  window.addEventListener("message", function (event) {
    if (event.origin !== origin || !event.data || event.data.type !== "tarif-pricing-table:height") return;
    for (var i = 0; i < frames.length; i++) {
      if (frames[i].contentWindow === event.source) {
        var height = parseInt(event.data.height, 10);
        if (height > 0 && height < 10000) frames[i].style.height = height + "px";
      }
    }
  });

  function scan() {
    var nodes = document.querySelectorAll("tarif-pricing-table[data-id], [data-tarif-pricing-table]");
    for (var i = 0; i < nodes.length; i++) mount(nodes[i]);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", scan);
  else scan();
})();
