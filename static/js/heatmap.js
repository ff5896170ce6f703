// Heatmap viewer: the opacity slider fades the heatmap over the scan; while the worker is
// still drawing it (the image URL answers 202 with a page, not a PNG) it is tried again.
(function () {
  "use strict";
  var overlay = document.getElementById("heatmap-overlay");
  var slider = document.getElementById("heatmap-opacity");
  var value = document.getElementById("heatmap-opacity-value");
  var wait = document.getElementById("heatmap-wait");
  if (!overlay || !slider) { return; }
  var source = overlay.getAttribute("src");
  var tries = 0;

  function show() {
    overlay.style.opacity = String(slider.value / 100);
    if (value) { value.textContent = slider.value + " %"; }
  }

  overlay.addEventListener("error", function () {
    tries += 1;
    if (wait) { wait.hidden = false; }
    if (tries > 60) { wait.textContent = "The heatmap could not be drawn. Reload the page to try again."; return; }
    window.setTimeout(function () {
      overlay.src = source + (source.indexOf("?") < 0 ? "?" : "&") + "try=" + tries;
    }, 2000);
  });
  overlay.addEventListener("load", function () { if (wait) { wait.hidden = true; } });
  slider.addEventListener("input", show);
  show();
})();
