// Vigil console: optional enhancements. Every page works without this file.
(function () {
  "use strict";
  // Auto-refresh (the dashboard): reload while the tab is visible.
  var secs = parseInt(document.body.getAttribute("data-refresh") || "", 10);
  if (secs > 0) {
    setInterval(function () {
      if (document.visibilityState === "visible") {
        window.location.reload();
      }
    }, secs * 1000);
  }
  // "Copy" buttons: <button data-copy="ID" hidden> copies #ID's text.
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source || !navigator.clipboard) {
      return;
    }
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(source.textContent.trim()).then(
        function () { button.textContent = "Copied"; },
        function () { button.textContent = "Copy failed: select the text"; }
      );
    });
  });
})();
