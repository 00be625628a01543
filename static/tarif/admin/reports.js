// Report charts of the console (reports, feedback reports, operations): draws every
// <canvas class="tarif-chart" data-chart="ID"> from the JSON in <script id="ID"
// type="application/json"> (Django's json_script; the CSP allows no inline script).
// Chart.js is django-unfold's bundled copy, loaded on every console page (window.Chart).
//
// The JSON (reports/charts.py, Chart.as_json): labels, datasets [{label, type, data,
// colour}], x_label, y_label, unit ("money" | "percent" | "number" | "days"), currency,
// stacked, y_min, y_max, horizontal. Ticks and tooltips are formatted in the page's
// language; axes carry their titles and the legend shows whole series names.
(function () {
  "use strict";

  function locale() {
    var lang = document.documentElement.getAttribute("lang") || "en";
    try {
      return Intl.getCanonicalLocales(lang)[0];
    } catch (error) {
      return "en";
    }
  }

  function formatter(spec) {
    var where = locale();
    if (spec.unit === "money" && spec.currency) {
      var money = new Intl.NumberFormat(where, { style: "currency", currency: spec.currency, maximumFractionDigits: 2 });
      return function (value) { return money.format(value); };
    }
    if (spec.unit === "percent") {
      var percent = new Intl.NumberFormat(where, { style: "percent", maximumFractionDigits: 1 });
      return function (value) { return percent.format(value / 100); };
    }
    var number = new Intl.NumberFormat(where, { maximumFractionDigits: 2 });
    return function (value) { return number.format(value); };
  }

  function axisTitle(text) {
    var words = text || "";
    return { display: Boolean(words), text: words.charAt(0).toUpperCase() + words.slice(1), font: { weight: "600" } };
  }

  function config(spec) {
    var format = formatter(spec);
    // Counts get whole-number ticks (no "0.5 answers").
    var whole = spec.unit !== "money" && spec.datasets.every(function (dataset) {
      return dataset.data.every(function (value) { return value === null || Number.isInteger(value); });
    });
    var valueAxis = spec.horizontal ? "x" : "y";
    var categoryAxis = spec.horizontal ? "y" : "x";
    var scales = {};
    scales[categoryAxis] = {
      stacked: Boolean(spec.stacked),
      title: axisTitle(spec.horizontal ? spec.y_label : spec.x_label),
      ticks: { autoSkip: true, maxRotation: 45 },
      grid: { display: false },
    };
    scales[valueAxis] = {
      stacked: Boolean(spec.stacked),
      title: axisTitle(spec.horizontal ? spec.x_label : spec.y_label),
      ticks: { precision: whole ? 0 : undefined, callback: function (value) { return format(value); } },
      beginAtZero: true,
    };
    if (spec.y_min !== null && spec.y_min !== undefined) scales[valueAxis].min = spec.y_min;
    if (spec.y_max !== null && spec.y_max !== undefined) scales[valueAxis].max = spec.y_max;
    return {
      type: "bar",
      data: {
        labels: spec.labels,
        datasets: spec.datasets.map(function (dataset) {
          var line = dataset.type === "line";
          return {
            type: dataset.type,
            label: dataset.label,
            data: dataset.data,
            backgroundColor: dataset.colour,
            borderColor: dataset.colour,
            borderWidth: line ? 2 : 0,
            pointRadius: line ? 3 : 0,
            spanGaps: true,
            order: line ? 0 : 1,
          };
        }),
      },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        indexAxis: spec.horizontal ? "y" : "x",
        scales: scales,
        plugins: {
          legend: {
            display: spec.datasets.length > 1,
            position: "bottom",
            // Whole series names, in the order of the series (lines are drawn on top, listed last).
            labels: { boxWidth: 12, boxHeight: 12, sort: function (a, b) { return a.datasetIndex - b.datasetIndex; } },
          },
          tooltip: {
            callbacks: {
              label: function (item) {
                var value = spec.horizontal ? item.parsed.x : item.parsed.y;
                return item.dataset.label + ": " + format(value);
              },
            },
          },
        },
      },
    };
  }

  function draw(canvas) {
    if (canvas.getAttribute("data-drawn") === "1" || typeof window.Chart === "undefined") return;
    var source = document.getElementById(canvas.getAttribute("data-chart"));
    if (!source) return;
    var spec = JSON.parse(source.textContent);
    canvas.setAttribute("data-drawn", "1");
    new window.Chart(canvas, config(spec));
  }

  function drawAll() {
    document.querySelectorAll("canvas.tarif-chart[data-chart]").forEach(draw);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawAll);
  } else {
    drawAll();
  }
})();
