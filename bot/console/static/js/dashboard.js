/* The dashboard's charts, drawn with the vendored Chart.js from each figure's JSON. */
(function () {
  "use strict";
  if (!window.Chart) return;
  var palette = ["#00695c", "#ef6c00", "#1565c0", "#c62828", "#6a1b9a", "#2e7d32",
                 "#f9a825", "#4e342e", "#00838f", "#ad1457", "#5d4037", "#455a64"];
  window.Chart.defaults.font.family = '"PingFang SC", "Noto Sans CJK SC", "Microsoft YaHei", sans-serif';

  function hasData(figure) {
    return figure.datasets.some(function (d) {
      return d.data.some(function (v) { return v !== null && v !== 0; });
    });
  }

  function draw(canvas, figure) {
    var valueAxis = figure.horizontal ? "x" : "y";
    var scales = { x: { stacked: !!figure.stacked }, y: { stacked: !!figure.stacked } };
    scales[valueAxis].beginAtZero = true;
    if (figure.max) scales[valueAxis].max = figure.max;
    if (!figure.decimals) scales[valueAxis].ticks = { precision: 0 }; // counts of tickets
    return new window.Chart(canvas, {
      type: figure.type,
      data: {
        labels: figure.labels,
        datasets: figure.datasets.map(function (d, i) {
          return { label: d.label, data: d.data, backgroundColor: palette[i % palette.length],
                   borderColor: palette[i % palette.length], spanGaps: true };
        })
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false, // the figures as they are, at once (and in screenshots)
        indexAxis: figure.horizontal ? "y" : "x",
        scales: scales,
        plugins: { legend: { position: "bottom" } }
      }
    });
  }

  var canvases = document.querySelectorAll("canvas[data-source]");
  Array.prototype.forEach.call(canvases, function (canvas) {
    var empty = canvas.closest(".chart").querySelector(".chart-empty");
    fetch(canvas.getAttribute("data-source"), { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error(String(response.status));
        return response.json();
      })
      .then(function (figure) {
        empty.hidden = hasData(figure);
        if (figure.note) empty.textContent = figure.note; // a figure this setup does not measure
        draw(canvas, figure);
      })
      .catch(function () {
        empty.textContent = "图表加载失败，请刷新页面";
        empty.hidden = false;
      });
  });
})();
