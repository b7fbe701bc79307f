// drover dashboard: small progressive enhancements. Every page works
// without this script; it keeps pages that ask for it fresh, runs the log
// page's live tail and submits its count-by choice.
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
  // The log page's count panel: choosing a field counts at once (the
  // Count button does the same without this script).
  var countField = document.getElementById("count-field");
  if (countField && countField.form) {
    countField.addEventListener("change", function () { countField.form.submit(); });
  }
  // The log page's live tail: matching lines as they reach a server, read
  // from /ui/logs/tail (the API's tail: one JSON record per line) and put
  // on top of the table. Without this script the switch stays hidden.
  var tail = document.getElementById("tail");
  if (tail && window.fetch && window.ReadableStream && window.AbortController) {
    var toggle = document.getElementById("tail-toggle");
    var status = document.getElementById("tail-status");
    var table = document.querySelector("table.loglines");
    var body = table ? table.querySelector("tbody") : null;
    var keep = 1000;
    var controller = null;
    var received = 0;
    var say = function (text) { if (status) { status.textContent = text; } };
    var cell = function (row, text, className) {
      var td = document.createElement("td");
      if (className) { td.className = className; }
      td.textContent = text;
      row.appendChild(td);
      return td;
    };
    var link = function (td, href) {
      var a = document.createElement("a");
      a.href = href;
      a.textContent = td.textContent;
      td.textContent = "";
      td.appendChild(a);
    };
    var show = function (record) {
      if (!body) { return; }
      var row = document.createElement("tr");
      row.className = "fresh";
      var when = new Date(Math.floor(record.timestamp / 1e6)).toISOString().replace("T", " ").slice(0, 23);
      cell(row, when, "when");
      link(cell(row, record.node), "/ui/node/" + encodeURIComponent(record.node));
      var source = record.job && record.task ? record.job + "/" + record.task + " " + record.stream : record.source + " " + record.stream;
      var sourceCell = cell(row, source);
      if (record.alloc) { link(sourceCell, "/ui/alloc/" + encodeURIComponent(record.alloc)); }
      var level = record.level || "";
      cell(row, level, "level-" + level.toLowerCase());
      cell(row, record.message, "msg");
      body.insertBefore(row, body.firstChild);
      while (body.rows.length > keep) { body.deleteRow(body.rows.length - 1); }
      table.hidden = false;
      var empty = document.getElementById("no-lines");
      if (empty) { empty.hidden = true; }
      received += 1;
      say("live: " + received + " new line" + (received === 1 ? "" : "s"));
    };
    var start = function () {
      controller = new AbortController();
      received = 0;
      say("live: waiting for lines");
      fetch(tail.getAttribute("data-tail"), { credentials: "same-origin", signal: controller.signal })
        .then(function (response) {
          if (!response.ok || !response.body) { throw new Error("the tail answered " + response.status); }
          var reader = response.body.getReader();
          var decoder = new TextDecoder();
          var pending = "";
          var pump = function () {
            return reader.read().then(function (chunk) {
              if (chunk.done) { say("live tail ended"); tail.checked = false; return; }
              pending += decoder.decode(chunk.value, { stream: true });
              var lines = pending.split("\n");
              pending = lines.pop();
              lines.forEach(function (line) {
                if (line.trim()) { try { show(JSON.parse(line)); } catch (error) { /* not a record */ } }
              });
              return pump();
            });
          };
          return pump();
        })
        .catch(function (error) {
          if (error && error.name === "AbortError") { return; }
          say("live tail stopped: " + error.message);
          tail.checked = false;
        });
    };
    tail.addEventListener("change", function () {
      if (tail.checked) { start(); } else if (controller) { controller.abort(); controller = null; say("live tail off"); }
    });
    if (toggle) { toggle.hidden = false; }
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
