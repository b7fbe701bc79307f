// drover dashboard: small progressive enhancements. Every page works
// without this script; it keeps pages that ask for it fresh, runs the log
// page's live tail and submits its count-by choice, and streams the exec
// page's results.
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
      // The "here or everywhere?" switch, through /ui/logs/like (the
      // server picks the words to search by, as for the lines it renders).
      var like = cell(row, "", "like");
      var base = tail.getAttribute("data-like");
      [["node", "node", "on " + record.node], ["hostgroup", "group", "in " + record.hostgroup], ["fleet", "fleet", "on every node"]]
        .forEach(function (choice) {
          if (choice[0] === "hostgroup" && !record.hostgroup) { return; }
          var a = document.createElement("a");
          a.href = base + (base.indexOf("?") < 0 ? "?" : "&") + new URLSearchParams({
            scope: choice[0], node: record.node, hostgroup: record.hostgroup || "", message: record.message
          }).toString();
          a.title = "lines like this one " + choice[2];
          a.textContent = choice[1];
          like.appendChild(a);
        });
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
          say("live: following new lines");
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
  // The log page's older lines: when the pager at the bottom comes into
  // view, the next page (the "older lines" link, a cursor) is fetched and
  // its lines appended, so scrolling reads on; without this script the
  // link pages as before.
  var pager = document.getElementById("log-pager");
  var logBody = document.querySelector("table.loglines tbody");
  if (pager && logBody && window.fetch && window.IntersectionObserver && window.DOMParser) {
    var loading = false;
    var older = function () {
      var next = pager.querySelector("a[rel=next]");
      if (!next || loading) { return; }
      loading = true;
      next.textContent = "loading older lines…";
      fetch(next.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (response) {
          if (!response.ok) { throw new Error("the next page answered " + response.status); }
          return response.text();
        })
        .then(function (html) {
          var page = new DOMParser().parseFromString(html, "text/html");
          var rows = page.querySelectorAll("table.loglines tbody tr");
          for (var i = 0; i < rows.length; i += 1) { logBody.appendChild(document.importNode(rows[i], true)); }
          var freshNext = page.querySelector("#log-pager a[rel=next]");
          if (freshNext) {
            next.href = freshNext.getAttribute("href");
            next.textContent = freshNext.textContent;
          } else {
            next.parentNode.removeChild(next);
          }
          logBody.setAttribute("data-pages", String((parseInt(logBody.getAttribute("data-pages"), 10) || 1) + 1));
          loading = false;
          // Still at the bottom (a tall screen): read on.
          if (pager.getBoundingClientRect().top < window.innerHeight) { older(); }
        })
        .catch(function (error) {
          next.textContent = "older lines → (" + error.message + ")";
          loading = false;
        });
    };
    new window.IntersectionObserver(function (entries) {
      if (entries.some(function (entry) { return entry.isIntersecting; })) { older(); }
    }, { rootMargin: "200px" }).observe(pager);
  }
  // The exec page: the form is posted with stream=1 and the results are
  // swapped in as each node answers (the server renders them, grouped as
  // the CLI groups them). Without this script the plain post shows the
  // results once every node has answered.
  var execForm = document.getElementById("exec-form");
  var execOutcome = document.getElementById("exec-outcome");
  if (execForm && execOutcome && window.fetch && window.ReadableStream && window.URLSearchParams) {
    execForm.addEventListener("submit", function (event) {
      event.preventDefault();
      var button = execForm.querySelector("button[type=submit]");
      if (button) { button.disabled = true; }
      var done = function () { if (button) { button.disabled = false; } };
      var fields = new URLSearchParams(new FormData(execForm));
      fields.set("stream", "1");
      execOutcome.innerHTML = "<p class=\"notice\" role=\"status\">Starting…</p>";
      fetch(execForm.action, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body: fields.toString()
      })
        .then(function (response) {
          var type = response.headers.get("Content-Type") || "";
          if (type.indexOf("application/x-ndjson") !== 0 || !response.body) {
            // A refusal or a form error: the page the server rendered.
            return response.text().then(function (html) {
              var fresh = new DOMParser().parseFromString(html, "text/html").querySelector("main");
              var main = document.querySelector("main");
              if (fresh && main) { main.innerHTML = fresh.innerHTML; }
              done();
            });
          }
          var reader = response.body.getReader();
          var decoder = new TextDecoder();
          var pending = "";
          var pump = function () {
            return reader.read().then(function (chunk) {
              if (chunk.done) { done(); return; }
              pending += decoder.decode(chunk.value, { stream: true });
              var lines = pending.split("\n");
              pending = lines.pop();
              lines.forEach(function (line) {
                if (!line.trim()) { return; }
                var update = JSON.parse(line);
                execOutcome.innerHTML = update.html;
                execOutcome.setAttribute("data-done", update.done ? "true" : "false");
              });
              return pump();
            });
          };
          return pump();
        })
        .catch(function (error) {
          execOutcome.innerHTML = "";
          var note = document.createElement("p");
          note.className = "error";
          note.setAttribute("role", "alert");
          note.textContent = "the run's results stopped coming: " + error.message;
          execOutcome.appendChild(note);
          done();
        });
    });
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
