/* Shared by every page: the SLA countdowns (ticking every second), the CSRF token for
 * scripts' POSTs, and building elements with textContent only: customer text is never
 * parsed as HTML. */
(function () {
  "use strict";

  // Server times are naive local times ("2026-11-24T10:45:00"); read them as UTC numbers
  // so that the browser's own time zone never shifts a deadline.
  function parseLocal(text) {
    var m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?/.exec(text || "");
    return m ? Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0)) : null;
  }

  var offset = 0; // browser clock minus server clock, in ms

  function setServerNow(text) {
    var server = parseLocal(text);
    if (server !== null) offset = Date.now() - server;
  }

  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }

  function overdueWords(seconds) {
    var minutes = Math.max(1, Math.ceil(seconds / 60));
    if (minutes < 60) return minutes + "分钟";
    var hours = Math.floor(minutes / 60);
    minutes = minutes % 60;
    if (hours < 24) return minutes ? hours + "小时" + minutes + "分钟" : hours + "小时";
    var days = Math.floor(hours / 24);
    hours = hours % 24;
    return hours ? days + "天" + hours + "小时" : days + "天";
  }

  function remainingSeconds(dueText) {
    var due = parseLocal(dueText);
    return due === null ? null : (due - (Date.now() - offset)) / 1000;
  }

  function slaText(seconds) {
    if (seconds >= 0) {
      var whole = Math.floor(seconds);
      return "剩余 " + pad(Math.floor(whole / 3600)) + ":" + pad(Math.floor((whole % 3600) / 60)) + ":" + pad(whole % 60);
    }
    return "已超时 " + overdueWords(-seconds);
  }

  function tick() {
    var clocks = document.querySelectorAll(".sla[data-due]");
    for (var i = 0; i < clocks.length; i++) {
      var seconds = remainingSeconds(clocks[i].getAttribute("data-due"));
      if (seconds === null) continue;
      clocks[i].textContent = slaText(seconds);
      clocks[i].classList.toggle("overdue", seconds < 0);
    }
  }

  function csrf() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  // POST with the session's CSRF token in a header; answers {ok, status, data}.
  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Accept": "application/json", "Content-Type": "application/json", "X-CSRF-Token": csrf() },
      body: JSON.stringify(body || {})
    }).then(function (response) {
      if (response.status === 401) {
        window.location.href = "/login?next=" + encodeURIComponent(window.location.pathname);
      }
      return response.json().catch(function () { return {}; }).then(function (data) {
        return { ok: response.ok, status: response.status, data: data };
      });
    }, function () {
      return { ok: false, status: 0, data: { error: "网络连接失败，请稍后重试" } };
    });
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // An event stream that says whether it is connected, and sends the person to the login
  // page when the session has ended (the stream's reconnects are then refused).
  function liveStream(url, status, handlers) {
    var source = new EventSource(url);
    Object.keys(handlers).forEach(function (name) {
      source.addEventListener(name, function (event) { handlers[name](JSON.parse(event.data)); });
    });
    source.onopen = function () {
      if (status) { status.textContent = "实时更新中"; status.setAttribute("data-state", "live"); }
    };
    source.onerror = function () {
      if (status) { status.textContent = "连接中断，正在重连…"; status.setAttribute("data-state", "lost"); }
      fetch("/api/queue", { credentials: "same-origin", headers: { "Accept": "application/json" } }).then(function (r) {
        if (r.status === 401) window.location.href = "/login";
      }, function () {});
    };
    return source;
  }

  setServerNow(document.body.getAttribute("data-server-now"));
  tick();
  setInterval(tick, 1000);

  window.Console = {
    csrf: csrf, el: el, liveStream: liveStream, post: post, setServerNow: setServerNow, tick: tick
  };
})();
