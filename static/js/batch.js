// Batch page: poll the progress endpoint, move the bars, reload for the results once
// every job has finished. Without JavaScript the page still shows the state at load.
(function () {
  "use strict";
  var section = document.getElementById("jobs");
  if (!section || section.dataset.finished === "true") { return; }
  var url = section.dataset.progressUrl;
  var delay = 1500;
  var failures = 0;

  function update(job) {
    var box = section.querySelector('[data-job="' + job.id + '"]');
    if (!box) { return false; }
    var bar = box.querySelector(".progress");
    bar.value = job.percent;
    bar.textContent = job.percent + "%";
    var status = box.querySelector(".job-status");
    status.textContent = job.status_display;
    status.className = "job-status status-" + job.status;
    box.querySelector(".job-done").textContent = job.done + job.failed;
    box.querySelector(".job-total").textContent = job.total;
    box.querySelector(".job-percent").textContent = job.percent;
    box.querySelector(".job-failed").textContent =
      job.failed ? ", " + job.failed + " could not be analysed" : "";
    box.querySelector(".job-error").textContent = job.error || "";
    var eta = box.querySelector(".job-eta");
    if (eta) { eta.textContent = job.time_left ? " · " + job.time_left : ""; }
    return true;
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (data) {
        failures = 0;
        var known = data.jobs.every(update);
        if (data.finished || !known) {
          section.dataset.finished = "true";
          window.location.reload();
          return;
        }
        window.setTimeout(poll, delay);
      })
      .catch(function () {
        failures += 1;  // keep trying, more slowly, through a network blip
        window.setTimeout(poll, Math.min(delay * Math.pow(2, failures), 30000));
      });
  }

  window.setTimeout(poll, delay);
})();
