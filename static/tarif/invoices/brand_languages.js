// Brand change form: each text kept per language (footer, payment instructions, late-payment
// mention; django-modeltranslation's <field>_fr / <field>_en) becomes one field with language
// tabs (WAI-ARIA tabs: arrow keys move between them). Without JavaScript both fields show,
// labelled [fr] / [en]. No inline script: CSP is script-src 'self'.
(function () {
  "use strict";

  var NAMES = { fr: "Français", en: "English" };

  function rowOf(widget, name) {
    var node = widget;
    while (node && node !== document.body) {
      if (node.classList && node.classList.contains("field-" + name)) return node;
      node = node.parentElement;
    }
    return widget.parentElement;
  }

  function start() {
    var groups = {};
    var order = [];
    document.querySelectorAll("[name$='_fr'], [name$='_en']").forEach(function (widget) {
      var match = /^(.+)_(fr|en)$/.exec(widget.name);
      if (!match || !/\bmt\b/.test(widget.className)) return; // translated fields only
      if (!groups[match[1]]) {
        groups[match[1]] = {};
        order.push(match[1]);
      }
      groups[match[1]][match[2]] = rowOf(widget, widget.name);
    });
    order.forEach(function (field) {
      var rows = groups[field];
      if (!rows.fr || !rows.en) return;
      var list = document.createElement("div");
      list.setAttribute("role", "tablist");
      list.className = "tarif-language-tabs";
      list.setAttribute("aria-label", field.replace(/_/g, " "));
      var tabs = [];
      ["fr", "en"].forEach(function (language, index) {
        var tab = document.createElement("button");
        tab.type = "button";
        tab.id = "tab-" + field + "-" + language;
        tab.setAttribute("role", "tab");
        tab.setAttribute("aria-controls", rows[language].id || (rows[language].id = "panel-" + field + "-" + language));
        tab.textContent = NAMES[language];
        rows[language].setAttribute("role", "tabpanel");
        rows[language].setAttribute("aria-labelledby", tab.id);
        tab.addEventListener("click", function () { select(index); });
        tab.addEventListener("keydown", function (event) {
          if (event.key === "ArrowRight" || event.key === "ArrowLeft") {
            event.preventDefault();
            select(1 - index);
            tabs[1 - index].focus();
          }
        });
        tabs.push(tab);
        list.appendChild(tab);
      });
      function select(chosen) {
        ["fr", "en"].forEach(function (language, index) {
          var on = index === chosen;
          tabs[index].setAttribute("aria-selected", on ? "true" : "false");
          tabs[index].tabIndex = on ? 0 : -1;
          rows[language].hidden = !on;
        });
      }
      rows.fr.parentElement.insertBefore(list, rows.fr);
      // A language whose field has an error opens first.
      select(rows.en.classList.contains("errors") && !rows.fr.classList.contains("errors") ? 1 : 0);
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
