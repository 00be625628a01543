// django-celery-beat's periodic-task form: show what the chosen crontab means under its picker
// (templates/admin/djcelery/change_periodictask_form.html; a static file for the CSP).
(function () {
  "use strict";

  function start() {
    var data = document.getElementById("readable-crontabs");
    var picker = document.getElementById("id_crontab");
    if (!data || !picker) {
      return;
    }
    var readable = JSON.parse(data.textContent);
    var row = picker.closest(".field-crontab") || picker.parentElement;
    var note = document.createElement("p");
    note.className = "help text-xs text-base-500 mt-1";
    row.appendChild(note);
    var show = function () {
      note.textContent = readable[picker.value] || "";
    };
    picker.addEventListener("change", show);
    show();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
