// Case page: drag-and-drop onto the file input, and a count of the chosen files with a
// warning before sending more than the server accepts. The plain form works without it.
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  if (!form) { return; }
  var zone = document.getElementById("dropzone");
  var input = form.querySelector('input[type="file"]');
  var summary = document.getElementById("file-summary");
  var button = document.getElementById("upload-button");
  var maxFiles = parseInt(form.dataset.maxFiles, 10);
  var maxBytes = parseInt(form.dataset.maxFileMb, 10) * 1024 * 1024;

  function describe() {
    var files = input.files, big = 0, total = 0;
    for (var i = 0; i < files.length; i++) {
      total += files[i].size;
      // A .zip of a DICOM series has its own, larger limit (checked by the server).
      if (files[i].size > maxBytes && !/\.zip$/i.test(files[i].name)) { big += 1; }
    }
    var text = files.length ? files.length + " file(s), " + (total / 1048576).toFixed(1) + " MB" : "";
    if (big) { text += "; " + big + " over the size limit will be rejected"; }
    if (files.length > maxFiles) {
      text += ". One upload takes at most " + maxFiles + " files: split the batch.";
      summary.className = "error";
    } else {
      summary.className = "muted";
    }
    summary.textContent = text;
    return files.length <= maxFiles;
  }

  input.addEventListener("change", describe);
  ["dragenter", "dragover"].forEach(function (name) {
    zone.addEventListener(name, function (event) {
      event.preventDefault();
      zone.classList.add("over");
    });
  });
  ["dragleave", "drop"].forEach(function (name) {
    zone.addEventListener(name, function () { zone.classList.remove("over"); });
  });
  zone.addEventListener("drop", function (event) {
    event.preventDefault();
    if (event.dataTransfer && event.dataTransfer.files.length) {
      input.files = event.dataTransfer.files;
      describe();
    }
  });
  form.addEventListener("submit", function (event) {
    if (!describe()) { event.preventDefault(); return; }
    button.disabled = true;
    button.textContent = "Uploading…";
  });
})();
