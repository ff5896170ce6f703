// Admin "training run" page: poll the run's status and move the bar (no inline script:
// the Content-Security-Policy allows scripts from this site's files only).
(function () {
  "use strict";
  var box = document.getElementById("training-box");
  if (!box || box.dataset.finished === "true") { return; }
  var url = box.dataset.statusUrl;
  var bar = document.getElementById("training-progress");
  var status = document.getElementById("training-status");
  var result = document.getElementById("training-result");
  var error = document.getElementById("training-error");
  function poll() {
    fetch(url, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (data) {
      bar.value = data.percent;
      status.textContent = data.status_display + (data.stage ? " · " + data.stage : "") + " · " + data.percent + "%";
      if (data.error) { error.textContent = data.error; error.hidden = false; }
      if (data.result_url) {
        result.textContent = "New version: ";
        var a = document.createElement("a"); a.href = data.result_url; a.textContent = data.result_version;
        result.appendChild(a); result.appendChild(document.createTextNode(" (inactive until activated)"));
      }
      if (!data.finished) { window.setTimeout(poll, 2000); }
    }).catch(function () { window.setTimeout(poll, 5000); });
  }
  poll();
})();
