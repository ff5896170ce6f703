// Heatmap viewer: the opacity slider fades the heatmap over the scan; while the worker is
// still drawing it (the image URL answers 202 with a page, not a PNG) it is tried again;
// a failed drawing is said in words.
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

  var failed = document.getElementById("heatmap-failed");

  function giveUp() {
    overlay.hidden = true;
    if (wait) { wait.hidden = true; }
    if (failed) { failed.hidden = false; }
  }

  // Not a PNG: ask the URL why. 202: still being drawn, try again shortly; anything else
  // (drawing failed, image gone): say so and stop.
  overlay.addEventListener("error", function () {
    if (overlay.hidden) { return; }
    tries += 1;
    fetch(source, { credentials: "same-origin" }).then(function (response) {
      if (response.status !== 202 || tries > 150) { giveUp(); return; }
      if (wait) { wait.hidden = false; }
      window.setTimeout(function () {
        overlay.src = source + (source.indexOf("?") < 0 ? "?" : "&") + "try=" + tries;
      }, 2000);
    }).catch(giveUp);
  });
  overlay.addEventListener("load", function () { if (wait) { wait.hidden = true; } });
  slider.addEventListener("input", show);
  show();
})();
