// drover dashboard: small progressive enhancements. Every page works
// without this script; it only keeps pages that ask for it fresh.
(function () {
  "use strict";
  // <main data-refresh="15">: reload the page's main content every N
  // seconds while the tab is visible, keeping the scroll position (the
  // content is swapped in place, so the layout does not jump).
  var main = document.querySelector("main[data-refresh]");
  if (main) {
    var seconds = parseInt(main.getAttribute("data-refresh"), 10) || 15;
    var stamp = document.getElementById("live");
    var refresh = function () {
      if (document.hidden) { return; }
      // Not while the person is typing in a box of this page.
      var active = document.activeElement;
      if (active && (active.tagName === "INPUT" || active.tagName === "TEXTAREA")) { return; }
      fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (html) {
          if (!html) { return; }
          var fresh = new DOMParser().parseFromString(html, "text/html").querySelector("main");
          if (fresh) { main.innerHTML = fresh.innerHTML; }
          if (stamp) { stamp.textContent = "updated " + new Date().toLocaleTimeString(); }
        })
        .catch(function () {});
    };
    if (stamp) { stamp.textContent = "live: every " + seconds + " s"; }
    window.setInterval(refresh, seconds * 1000);
  }
  // Histogram bars are links (they zoom without JavaScript too); with it,
  // the arrow keys move between bars.
  document.addEventListener("keydown", function (event) {
    var bar = document.activeElement;
    if (!bar || !bar.parentElement || !bar.parentElement.classList.contains("histogram")) { return; }
    var next = event.key === "ArrowRight" ? bar.nextElementSibling : event.key === "ArrowLeft" ? bar.previousElementSibling : null;
    if (next) { next.focus(); event.preventDefault(); }
  });
})();
