/* The conversation view: new lines arrive over the event stream; the reply is posted by
 * script and shown at once (or marked as not delivered); "显示" fetches the unmasked
 * personal data. Every piece of text is set with textContent. */
(function () {
  "use strict";
  var article = document.getElementById("ticket");
  if (!article || !window.Console) return;
  var C = window.Console;
  var transcript = document.getElementById("transcript");
  var divider = document.getElementById("handoff-divider");

  function scrollDown() {
    transcript.scrollTop = transcript.scrollHeight;
  }

  function line(m) {
    var li = C.el("li", "line " + m.speaker + (m.error ? " failed" : ""));
    li.setAttribute("data-id", String(m.id));
    li.appendChild(C.el("span", "who", m.speaker_name + (m.author_name ? " · " + m.author_name : "")));
    li.appendChild(C.el("time", "at", m.at_text));
    li.appendChild(C.el("p", "text", m.text));
    if (m.speaker === "agent" && m.error) {
      li.appendChild(C.el("p", "delivery error", "发送失败：" + m.error));
    } else if (m.speaker === "agent" && !m.delivered) {
      li.appendChild(C.el("p", "delivery pending", "发送中…"));
    }
    return li;
  }

  function upsert(m) {
    var existing = transcript.querySelector('li[data-id="' + Number(m.id) + '"]');
    var fresh = line(m);
    if (existing) {
      existing.replaceWith(fresh);
    } else {
      transcript.appendChild(fresh);
      if (divider) divider.hidden = false;
      scrollDown();
    }
    var retry = document.getElementById("retry-form");
    if (retry) retry.hidden = !transcript.querySelector("li.line.failed");
  }

  function state(s) {
    var status = document.getElementById("ticket-status");
    var handoff = document.getElementById("handoff-state");
    var holder = document.getElementById("holder");
    if (status) status.textContent = s.status_name;
    if (handoff) {
      handoff.textContent = s.state_name;
      handoff.className = "state state-" + (s.state || "none");
    }
    if (holder) holder.textContent = s.holder_name || "未接单";
    var mood = document.getElementById("frustration");
    if (mood) {
      mood.textContent = s.frustration_word + "（" + s.frustration + "/3）";
      mood.className = "frustration level-" + s.frustration;
    }
  }

  var stream = article.getAttribute("data-stream") + "?after=" + encodeURIComponent(article.getAttribute("data-after"));
  C.liveStream(stream, null, { message: upsert, state: state });
  scrollDown();

  var reply = document.getElementById("reply-form");
  if (reply) {
    var text = document.getElementById("reply-text");
    var send = document.getElementById("reply-send");
    var error = document.getElementById("reply-error");
    reply.addEventListener("submit", function (event) {
      event.preventDefault();
      if (!text.value.trim()) return;
      send.disabled = true;
      error.hidden = true;
      C.post(reply.action, { text: text.value }).then(function (result) {
        send.disabled = false;
        if (!result.ok) {
          error.textContent = result.data.error || "发送失败，请稍后重试";
          error.hidden = false;
          return;
        }
        upsert(result.data.message);
        text.value = "";
        if (result.data.message.error) {
          error.textContent = "回复未能送达客户：" + result.data.message.error + "。可稍后点“重新发送”。";
          error.hidden = false;
        }
      });
    });
  }

  var pii = document.getElementById("pii-form");
  if (pii) {
    pii.addEventListener("submit", function (event) {
      event.preventDefault();
      C.post(pii.action).then(function (result) {
        if (!result.ok) return;
        Object.keys(result.data.values).forEach(function (key) {
          var field = document.querySelector('[data-pii="' + key.replace(/[^a-z_]/g, "") + '"]');
          if (field) field.textContent = result.data.values[key];
        });
        pii.hidden = true;
      });
    });
  }
})();
