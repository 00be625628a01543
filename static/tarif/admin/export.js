// The export form's "select all" box (templates/admin/import_export/export.html): ticks or
// unticks every column of the chosen resource, and follows the columns when they are ticked
// one by one. A static file because the console's CSP blocks inline scripts.
(function () {
  "use strict";

  function columns() {
    return Array.from(document.querySelectorAll('.selectable-field-export-row input[type="checkbox"]')).filter(
      function (box) {
        return box.closest(".selectable-field-export-row").style.display !== "none";
      }
    );
  }

  function start() {
    var toggle = document.querySelector("[data-export-select-all]");
    if (!toggle) {
      return;
    }
    var sync = function () {
      var boxes = columns();
      var ticked = boxes.filter(function (box) { return box.checked; }).length;
      toggle.checked = boxes.length > 0 && ticked === boxes.length;
      toggle.indeterminate = ticked > 0 && ticked < boxes.length;
    };
    toggle.addEventListener("change", function () {
      columns().forEach(function (box) { box.checked = toggle.checked; });
      toggle.indeterminate = false;
    });
    document.addEventListener("change", function (event) {
      if (event.target !== toggle && event.target.closest && event.target.closest(".selectable-field-export-row")) {
        sync();
      }
    });
    var resource = document.getElementById("id_resource");
    if (resource) {
      resource.addEventListener("input", function () { window.setTimeout(sync, 0); });
    }
    sync();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
